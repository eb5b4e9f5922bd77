/**
 * A credential value in memory. It prints as `[secret]` in logs, JSON and inspection,
 * so handing one to a logger by mistake leaks nothing; `reveal()` is the one way out,
 * and every call site of it is a place where a value leaves keywarden on purpose.
 */
export class SecretValue {
  readonly #value: string;
  constructor(value: string) {
    if (typeof value !== 'string' || value.length === 0) {
      throw new TypeError('SecretValue: expected a non-empty string');
    }
    this.#value = value;
  }

  /** The clear value: only for delivering it, verifying it, or fingerprinting it. */
  reveal(): string {
    return this.#value;
  }

  toString(): string {
    return '[secret]';
  }

  toJSON(): string {
    return '[secret]';
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return '[secret]';
  }

  /** A structured secret, such as an access key pair, serialized for delivery. */
  static ofJson(value: Record<string, unknown>): SecretValue {
    return new SecretValue(JSON.stringify(value));
  }

  /** The structured form of a value made by {@link SecretValue.ofJson}. */
  revealJson(): Record<string, string> {
    return JSON.parse(this.#value) as Record<string, string>;
  }
}
