/**
 * The `SecretDetector` keywarden scans with (issue #14): established engines (secretlint's
 * recommended preset by default) and keywarden's own rules (functions/core/exposure-rules.ts),
 * over the plain text and over what its base64- and URL-encoded segments decode to. One hit per
 * value and position; nothing here logs or throws a value.
 */
import {
  type EncodedSegment,
  findOwnSecrets,
  LineIndex,
  lastStartAtOrBefore,
  plainValuesByLine,
  repeatsPlain,
  type ScanContext,
  scanContext,
} from '../../core/exposure-rules.ts';
import type { DetectedSecret } from '../../core/exposure-types.ts';
import type { SecretDetector } from '../../core/ports.ts';
import { SecretlintDetector } from './secretlint-detector.ts';

/** Options of {@link CombinedSecretDetector}. */
export interface CombinedSecretDetectorProps {
  /**
   * The engines run beside keywarden's own rules.
   * @default [new SecretlintDetector()]
   */
  engines?: SecretDetector[];
  /**
   * Whether the engines also scan the decoded base64/URL segments (keywarden's own rules always do).
   * @default true
   */
  enginesOnEncoded?: boolean;
}

/** Engines + keywarden's own rules, deduplicated by value and position. */
export class CombinedSecretDetector implements SecretDetector {
  readonly #engines: SecretDetector[];
  readonly #enginesOnEncoded: boolean;

  constructor(props: CombinedSecretDetectorProps = {}) {
    this.#engines = props.engines ?? [new SecretlintDetector()];
    this.#enginesOnEncoded = props.enginesOnEncoded ?? true;
  }

  async detect(text: string): Promise<DetectedSecret[]> {
    const context = scanContext(text);
    // keywarden's own first: where an engine finds the same value at the same place, the
    // own rule's name is kept (it says which Vault/AWS form it is).
    const found = findOwnSecrets(text, context);
    const encoded: DetectedSecret[] = [];
    for (const engine of this.#engines) {
      found.push(...(await engine.detect(text)));
      if (this.#enginesOnEncoded) encoded.push(...(await this.#detectEncoded(engine, context)));
    }
    // A decoded segment's value also found in the clear on its line is the plain hit's.
    const plain = plainValuesByLine(found);
    return deduplicate([...found, ...encoded.filter((hit) => !repeatsPlain(hit, plain))]);
  }

  /** One engine call over every decoded segment (joined), each hit placed at its segment. */
  async #detectEncoded(engine: SecretDetector, context: ScanContext): Promise<DetectedSecret[]> {
    const segments = context.segments;
    if (segments.length === 0) return [];
    const starts: number[] = [];
    let length = 0;
    for (const segment of segments) {
      starts.push(length);
      length += segment.decoded.length + 1;
    }
    const joined = segments.map((segment) => segment.decoded).join('\n');
    const joinedLines = new LineIndex(joined);
    const out: DetectedSecret[] = [];
    for (const hit of await engine.detect(joined)) {
      const segment = segmentAt(segments, starts, joinedLines.offset(hit.line, hit.column));
      if (segment === undefined) continue;
      out.push({ ...hit, encoding: segment.encoding, line: segment.line, column: segment.column });
    }
    return out;
  }
}

function segmentAt(segments: EncodedSegment[], starts: number[], offset: number): EncodedSegment | undefined {
  return segments[lastStartAtOrBefore(starts, offset)];
}

/**
 * One hit per value and position, and an AWS key id alone dropped where the same id was found
 * with its secret (a pair whose secret was encoded shows its id in the clear, too).
 */
function deduplicate(found: DetectedSecret[]): DetectedSecret[] {
  const paired = new Set(
    found.filter((hit) => hit.rule === 'aws-access-key-pair').map((hit) => hit.accessKeyId),
  );
  const seen = new Set<string>();
  const out: DetectedSecret[] = [];
  for (const hit of found) {
    if (hit.rule === 'aws-access-key-id' && paired.has(hit.accessKeyId)) continue;
    const key = `${hit.line}:${hit.column}:${hit.value.reveal()}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(hit);
  }
  return out.sort((a, b) => a.line - b.line || a.column - b.column);
}
