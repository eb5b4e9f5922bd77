/**
 * What keywarden reads of the AWS query protocol's XML answers (STS, SNS): one element's plain
 * text, exactly, and an error's code and message. No XML parser: the answers read are flat, and
 * anything else is refused rather than guessed at.
 */
import { extendedEncodeURIComponent } from '@smithy/core/protocols';

const ENTITIES: Readonly<Record<string, string>> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

/** XML text with its entity and character references resolved; undefined when one is not XML's. */
export function xmlText(raw: string): string | undefined {
  let valid = true;
  const text = raw.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);|&/g, (whole, reference?: string) => {
    if (reference === undefined) {
      valid = false;
      return whole;
    }
    if (reference.startsWith('#')) {
      const code =
        reference[1] === 'x' ? Number.parseInt(reference.slice(2), 16) : Number(reference.slice(1));
      if (code > 0x10ffff) valid = false;
      return valid ? String.fromCodePoint(code) : whole;
    }
    const named = ENTITIES[reference];
    if (named === undefined) valid = false;
    return named ?? whole;
  });
  return valid ? text : undefined;
}

/**
 * The text of the one `<name>` element in `xml`, or undefined when there is none, more than one,
 * or it holds markup: the query protocol's answers (STS's, SNS's) put each field once, as plain text.
 */
export function onlyElement(xml: string, name: string): string | undefined {
  const pattern = new RegExp(`<${name}>([^<]*)</${name}>`, 'g');
  const found = [...xml.matchAll(pattern)];
  if (found.length !== 1 || xml.split(`<${name}>`).length !== 2) return undefined;
  return xmlText(found[0]?.[1] ?? '');
}

/** The code and raw message of a query-protocol refusal (`<ErrorResponse><Error><Code>…<Message>…`). */
export function queryError(xml: string, status: number): { code: string; message: string } {
  const code = /<Code>([^<]*)<\/Code>/.exec(xml)?.[1]?.trim() || `HTTP${status}`;
  const message = xmlText(/<Message>([^<]*)<\/Message>/.exec(xml)?.[1] ?? '') ?? '';
  return { code, message };
}

/**
 * A query-protocol request body (`application/x-www-form-urlencoded`), each name and value encoded
 * by the SDK's own encoder (RFC 3986: `!'()*` too, a space as `%20`).
 */
export function queryBody(parameters: Readonly<Record<string, string>>): string {
  return Object.entries(parameters)
    .map(([name, value]) => `${extendedEncodeURIComponent(name)}=${extendedEncodeURIComponent(value)}`)
    .join('&');
}
