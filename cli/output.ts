import Table from 'cli-table3';

/** Writes a value as indented JSON on stdout. */
export const printJson = (value: unknown): void => {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
};

/** Writes rows as a plain table on stdout (no colours, so it reads the same in CI logs). */
export function printTable(head: string[], rows: (string | number)[][]): void {
  const table = new Table({
    head,
    style: { head: [], border: [], compact: true },
    chars: { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' },
    wordWrap: true,
    colWidths: head.map((_, i) =>
      i === head.length - 1 ? Math.max(30, (process.stdout.columns ?? 160) - 80) : null,
    ),
  });
  table.push(...rows.map((row) => row.map(String)));
  process.stdout.write(`${table.toString()}\n`);
}

/** A message for people, on stderr so stdout stays machine-readable. */
export const say = (line: string): void => {
  process.stderr.write(`${line}\n`);
};
