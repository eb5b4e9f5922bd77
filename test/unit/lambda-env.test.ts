import { describe, expect, it } from 'vitest';
import { rateLimitsFromEnv } from '../../functions/adapters/rate-limits.ts';
import { functionEnvironment, KEYWARDEN_ENV, lambdaEnv } from '../../functions/handlers/env.ts';

const deployed = {
  AWS_REGION: 'eu-west-1',
  KEYWARDEN_TABLE: 'keywarden-state',
  KEYWARDEN_FINGERPRINT_KEY_SECRET_ARN: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:fp',
};

describe('environment contract: lambdaEnv', () => {
  it('reads every setting under the name functionEnvironment writes it', () => {
    // prepare: one distinct value per setting, written the way a construct writes them
    const settings = Object.fromEntries(Object.keys(KEYWARDEN_ENV).map((key) => [key, `value-of-${key}`]));
    const env = { AWS_REGION: 'eu-west-1', ...functionEnvironment(settings) };
    // act
    const read = lambdaEnv(env);
    // assess
    expect(read).toEqual({ region: 'eu-west-1', ...settings });
  });

  it('counts an empty variable as unset (the stack sets KEYWARDEN_VAULT_ADDR to "" without Vault)', () => {
    const read = lambdaEnv({ ...deployed, KEYWARDEN_VAULT_ADDR: '' });
    expect(read.vaultAddr).toBeUndefined();
  });

  it('names a missing required variable and what sets it', () => {
    expect(() => lambdaEnv({ ...deployed, KEYWARDEN_TABLE: '' })).toThrow(
      'environment variable KEYWARDEN_TABLE is not set; expected the value the CDK stack (infra/) gives this function',
    );
  });

  it('asks for the Vault token secret only when a Vault address is set', () => {
    expect(lambdaEnv(deployed).vaultTokenSecretArn).toBeUndefined();
    expect(() => lambdaEnv({ ...deployed, KEYWARDEN_VAULT_ADDR: 'https://vault.example.com:8200' })).toThrow(
      /environment variable KEYWARDEN_VAULT_TOKEN_SECRET_ARN is not set/,
    );
  });
});

describe('environment contract: functionEnvironment', () => {
  it('writes rate limits under the names rateLimitsFromEnv reads', () => {
    const rateLimits = {
      iam: { concurrency: 1, perSecond: 2 },
      'secrets-manager': { concurrency: 3, perSecond: 4 },
      vault: { concurrency: 5, perSecond: 6 },
    };
    expect(rateLimitsFromEnv(functionEnvironment({ rateLimits }))).toEqual(rateLimits);
  });

  it('leaves out a setting given as undefined and keeps an empty one', () => {
    expect(functionEnvironment({ table: 't', reportBucket: undefined as never, vaultAddr: '' })).toEqual({
      KEYWARDEN_TABLE: 't',
      KEYWARDEN_VAULT_ADDR: '',
    });
  });
});
