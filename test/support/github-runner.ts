/**
 * A GitHub runner's side of a JavaScript action, for specs that run the built Action
 * (action/dist) as GitHub does: a step is `node <file>` with its inputs as `INPUT_*`, the file
 * commands `GITHUB_ENV`, `GITHUB_OUTPUT` and `GITHUB_STATE`, and the main step's saved state
 * handed to the post step as `STATE_<name>`. Also the README's examples, which those specs run.
 */
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { REPO_ROOT } from '../../scripts/local-stack.ts';

/** One step's run: its exit code, what it wrote, and the file commands it issued. */
export interface StepRun {
  code: number;
  stdout: string;
  stderr: string;
  env: Record<string, string>;
  outputs: Record<string, string>;
  state: Record<string, string>;
}

/** Reads a file command (`name<<delimiter` / value / `delimiter`, as `@actions/core` writes them). */
export function fileCommands(path: string): Record<string, string> {
  const lines = readFileSync(path, 'utf8').split('\n');
  const values: Record<string, string> = {};
  for (let i = 0; i < lines.length; i++) {
    const heredoc = /^([^<=]+)<<(.+)$/.exec(lines[i] ?? '');
    if (!heredoc) continue;
    const [, name = '', delimiter] = heredoc;
    const value: string[] = [];
    for (i++; i < lines.length && lines[i] !== delimiter; i++) value.push(lines[i] ?? '');
    values[name] = value.join('\n');
  }
  return values;
}

/** Runs a step of the action the way the runner does: node, INPUT_* and file commands, in a workspace. */
export function runStep(
  step: 'main' | 'post',
  workspace: string,
  env: Record<string, string>,
): Promise<StepRun> {
  const files = { GITHUB_ENV: 'env', GITHUB_OUTPUT: 'output', GITHUB_STATE: 'state' } as const;
  const paths = Object.fromEntries(
    Object.entries(files).map(([name, file]) => [name, join(workspace, `${step}-${file}`)]),
  );
  for (const path of Object.values(paths)) writeFileSync(path, '');
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [join(REPO_ROOT, 'action', 'dist', `${step}.mjs`)],
      {
        cwd: workspace,
        // A runner's environment: no keywarden or AWS settings of the machine running the spec.
        env: {
          PATH: process.env.PATH ?? '',
          GITHUB_ACTIONS: 'true',
          RUNNER_TEMP: workspace,
          ...paths,
          ...env,
        },
        timeout: 30_000,
      },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number') return reject(error);
        resolve({
          code: typeof error?.code === 'number' ? error.code : 0,
          stdout,
          stderr,
          env: fileCommands(paths.GITHUB_ENV ?? ''),
          outputs: fileCommands(paths.GITHUB_OUTPUT ?? ''),
          state: fileCommands(paths.GITHUB_STATE ?? ''),
        });
      },
    );
  });
}

/** A fenced block of the README, by the comment on its first line (the README's examples are the ones run here). */
export function readmeExample(firstLine: string): string {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  for (const block of readme.matchAll(/^```\w*\n([\s\S]*?)^```$/gm)) {
    const text = block[1] ?? '';
    if (text.startsWith(firstLine)) return text;
  }
  throw new Error(`README.md has no example starting ${JSON.stringify(firstLine)}`);
}

/**
 * The README workflow's keywarden step as the runner passes it: its `with:` as `INPUT_*`
 * (name upper-cased, as the runner does), each `${{ expression }}` resolved from `context`.
 */
export function readmeActionInputs(context: Record<string, string>): {
  inputs: Record<string, string>;
  job: Record<string, unknown>;
} {
  const workflow = parseYaml(readmeExample('# .github/workflows/release.yml')) as {
    jobs: Record<
      string,
      { permissions?: Record<string, string>; steps: { uses?: string; with?: Record<string, string> }[] }
    >;
  };
  const [job] = Object.values(workflow.jobs);
  const step = job?.steps.find((s) => s.uses?.includes('/keywarden@'));
  if (!job || !step?.with) throw new Error("the README's workflow has no keywarden step with inputs");
  const resolve = (value: string) =>
    value.replace(/\$\{\{\s*([\w.-]+)\s*\}\}/g, (_, name: string) => {
      const resolved = context[name];
      if (resolved === undefined) throw new Error(`the spec has no value for \${{ ${name} }}`);
      return resolved;
    });
  return {
    inputs: Object.fromEntries(
      Object.entries(step.with).map(([name, value]) => [
        `INPUT_${name.toUpperCase()}`,
        resolve(String(value)),
      ]),
    ),
    job: job as Record<string, unknown>,
  };
}

/** The runner hands the main step's saved state to the post step as `STATE_<name>`. */
export const stateEnv = (state: Record<string, string>) =>
  Object.fromEntries(Object.entries(state).map(([name, value]) => [`STATE_${name}`, value]));

/** Lines of a step's log other than the runner's mask commands (which the runner consumes, never prints). */
export const printed = (run: Pick<StepRun, 'stdout' | 'stderr'>) =>
  `${run.stdout}\n${run.stderr}`.split('\n').filter((line) => !line.startsWith('::add-mask::'));
