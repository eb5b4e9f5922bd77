import { createHash, createHmac } from 'node:crypto';

/** SHA-256 (and HMAC-SHA-256 with a secret) in the shape the SigV4 signer expects. */
export class Sha256 {
  readonly #hash;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.#hash =
      secret === undefined
        ? createHash('sha256')
        : createHmac(
            'sha256',
            typeof secret === 'string'
              ? secret
              : secret instanceof ArrayBuffer
                ? new Uint8Array(secret)
                : new Uint8Array(secret.buffer, secret.byteOffset, secret.byteLength),
          );
  }
  update(data: string | Uint8Array): void {
    this.#hash.update(data);
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.#hash.digest());
  }
  reset(): void {}
}
