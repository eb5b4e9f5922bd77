/**
 * A CPU profile of this process over one phase of a benchmark, through the inspector (no
 * restart, no `--cpu-prof` over the whole run): what the engine's own code costs, apart from
 * seeding and reporting.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';

/**
 * With a path (`<file>.cpuprofile`), profiles this process's CPU until the returned function is
 * called, which writes the profile there (open it in Chrome DevTools); without one, does nothing.
 */
export async function startCpuProfile(path: string | undefined): Promise<(() => Promise<void>) | undefined> {
  if (!path) return undefined;
  const session = new Session();
  session.connect();
  const post = (method: string) =>
    new Promise<unknown>((resolve, reject) =>
      session.post(method, (error, result) => (error ? reject(error) : resolve(result))),
    );
  await post('Profiler.enable');
  await post('Profiler.start');
  return async () => {
    const { profile } = (await post('Profiler.stop')) as { profile: unknown };
    writeFileSync(path, JSON.stringify(profile));
    session.disconnect();
    process.stderr.write(`CPU profile: ${path}\n`);
  };
}
