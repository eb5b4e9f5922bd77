/**
 * What every Lambda entry point does around its one call, written once (middy's idea:
 * cross-cutting concerns wrap the handler): check the event against its zod schema, give
 * the logger the invocation's context, and turn a failure into the answer where the caller
 * expects one (the HTTP API's statuses). Elsewhere a failure is thrown, so Lambda, Step
 * Functions or Secrets Manager see it by its name (`BatchUnfinishedError`…) and retry as
 * configured.
 *
 * A handler file reads `export function makeHandler(deps) { return wrap({…}, run) }` (tests
 * and the local runtime call it with real adapters) and
 * `export const handler = entryPoint(async () => makeHandler(await wiring()))`.
 */
import type { Logger } from '@aws-lambda-powertools/logger';
import type { Context } from 'aws-lambda';
import type { z } from 'zod';
import { ValidationError } from '../core/errors.ts';
import { coldStart } from './lambda-config.ts';

/** Lambda's context, of which tests and the local runtime may pass part, or none. */
export type InvocationContext = Partial<Context>;

/** A wrapped handler: any event in, checked before its logic sees it. */
export type Wrapped<R> = (event?: unknown, context?: InvocationContext) => Promise<R>;

type EventOptions<S extends z.ZodType> =
  | {
      /** The event's schema: the handler's logic receives the parsed event. */
      event: S;
      /** What the event should be, for the refusal of one that is not: `a campaign event {campaignId}`. */
      expected: string;
    }
  /** No schema: the event is not read (a schedule's tick) or checked by the logic itself. */
  | { event?: undefined; expected?: undefined };

export type WrapOptions<S extends z.ZodType, R> = EventOptions<S> & {
  /** Given the invocation's context (request id, function name, cold start) when Lambda runs it. */
  logger?: Logger | undefined;
  /** Turns a failure into the answer (the HTTP API's status codes); without it, failures are thrown. */
  answer?: ((error: unknown, event: unknown) => R) | undefined;
};

/**
 * An event checked against its schema.
 *
 * @throws ValidationError naming each bad field and what was expected.
 */
export function parseEvent<S extends z.ZodType>(schema: S, event: unknown, expected: string): z.output<S> {
  const parsed = schema.safeParse(event);
  if (parsed.success) return parsed.data;
  throw new ValidationError(
    `expected ${expected}, got ${parsed.error.issues
      .map((issue) => `${issue.path.join('.') || '(event)'}: ${issue.message}`)
      .join('; ')}`,
  );
}

const isLambdaContext = (context: InvocationContext | undefined): context is Context =>
  typeof context?.awsRequestId === 'string' && typeof context.functionName === 'string';

/** A handler's logic wrapped in the concerns every entry point shares. */
export function wrap<R, S extends z.ZodType = z.ZodUnknown>(
  options: WrapOptions<S, R>,
  run: (event: z.output<S>, context: InvocationContext | undefined) => Promise<R>,
): Wrapped<R> {
  return async (event, context) => {
    if (options.logger && isLambdaContext(context)) options.logger.addContext(context);
    try {
      const parsed = options.event ? parseEvent(options.event, event, options.expected ?? 'an event') : event;
      return await run(parsed as z.output<S>, context);
    } catch (error) {
      if (options.answer) return options.answer(error, event);
      throw error;
    }
  };
}

/**
 * The Lambda export: builds the handler once per container (a failed cold start is retried
 * by the next invocation), then calls it.
 */
export function entryPoint<R>(init: () => Promise<Wrapped<R>>): Wrapped<R> {
  const ready = coldStart(init);
  return async (event, context) => (await ready())(event, context);
}
