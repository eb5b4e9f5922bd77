import * as z from 'zod';

/**
 * A schema built the first time something parses with it, not when its module is imported.
 *
 * Each classic zod schema is an object with every method of the API bound to it, and every
 * `.optional()`, `.min()` or `.default()` makes one more: the grant module's ten schemas are 191
 * of them, ~40 µs each. A Lambda function imports whole modules for one helper or one type (the
 * grant module for `targetOfType`, the identity module for a kind), so schemas built at import
 * cost every cold start of every function that imports their module, whether it parses with them
 * or not: 250–1,260 of them per function before this (issue #12), a quarter to a third of the import
 * time. Built on first use, a function pays for the schemas it parses, once, when it first parses.
 *
 * The result is a `z.ZodLazy` over the built schema: it parses, composes (`.optional()`, inside
 * another object) and infers (`z.infer`) as the built one does. What is particular to the built
 * schema's class (an object's `.shape` or `.extend`, an enum's `.options`) is on `.unwrap()`,
 * which builds it if it is not built yet and returns that one schema every time. Keep enums and
 * other small schemas whose `.options` callers read eager: one instance each.
 */
export function onFirstUse<T extends z.ZodType>(build: () => T): z.ZodLazy<T> {
  let built: T | undefined;
  return z.lazy(() => {
    built ??= build();
    return built;
  });
}
