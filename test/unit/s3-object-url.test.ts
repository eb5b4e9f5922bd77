/**
 * Where S3 PutObject (functions/adapters/aws/s3-put-object.ts) sends an object: the bucket's own
 * host name in AWS, by path where a name cannot be a TLS host name or the endpoint is the local
 * stack's. The writing itself is specified against moto (test/integration/s3-put-object.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { s3ObjectUrl } from '../../functions/adapters/aws/s3-put-object.ts';
import { environmentEndpoint, regionalHost } from '../../functions/adapters/aws/signed-fetch.ts';

describe('s3: s3ObjectUrl', () => {
  it('addresses a bucket by its own host name in AWS', () => {
    expect(String(s3ObjectUrl({ region: 'eu-west-1' }, 'kw-reports', 'reports/INC-1/c-1/report.html'))).toBe(
      'https://kw-reports.s3.eu-west-1.amazonaws.com/reports/INC-1/c-1/report.html',
    );
  });

  it('uses China’s domain in China’s regions', () => {
    expect(s3ObjectUrl({ region: 'cn-north-1' }, 'kw-reports', 'k').host).toBe(
      'kw-reports.s3.cn-north-1.amazonaws.com.cn',
    );
  });

  it('addresses a dotted bucket by path: the wildcard certificate covers one label', () => {
    expect(String(s3ObjectUrl({ region: 'us-east-1' }, 'kw.reports', 'a/b.json'))).toBe(
      'https://s3.us-east-1.amazonaws.com/kw.reports/a/b.json',
    );
  });

  it('addresses every bucket by path on a configured endpoint (moto)', () => {
    expect(
      String(
        s3ObjectUrl({ region: 'eu-west-1', endpoint: 'http://127.0.0.1:5000/' }, 'kw-reports', 'a/b.json'),
      ),
    ).toBe('http://127.0.0.1:5000/kw-reports/a/b.json');
  });

  it("encodes each key segment as the SDK does, '/' kept", () => {
    expect(s3ObjectUrl({ region: 'eu-west-1' }, 'kw-reports', "a b/c+d/(e)!'*/é").pathname).toBe(
      '/a%20b/c%2Bd/%28e%29%21%27%2A/%C3%A9',
    );
  });

  it('refuses an empty key, and a . or .. segment', () => {
    for (const key of ['', 'a/./b', '../b', 'a/..']) {
      expect(() => s3ObjectUrl({ region: 'eu-west-1' }, 'kw-reports', key), key).toThrow(/'\.\.' segment/);
    }
  });
});

describe('signed fetch: environmentEndpoint, as the SDK reads it', () => {
  it("takes the service's own variable first, then the shared one, unless told to ignore both", () => {
    const shared = { AWS_ENDPOINT_URL: 'http://127.0.0.1:5000' };
    expect(environmentEndpoint('S3', {})).toBeUndefined();
    expect(environmentEndpoint('S3', shared)).toBe('http://127.0.0.1:5000');
    expect(environmentEndpoint('S3', { ...shared, AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:5001' })).toBe(
      'http://127.0.0.1:5001',
    );
    expect(
      environmentEndpoint('S3', { ...shared, AWS_IGNORE_CONFIGURED_ENDPOINT_URLS: 'true' }),
    ).toBeUndefined();
  });
});

describe('signed fetch: regionalHost, the host the SDK’s endpoint rules would pick', () => {
  const fips = { AWS_USE_FIPS_ENDPOINT: 'true' };
  const dualStack = { AWS_USE_DUALSTACK_ENDPOINT: 'true' };

  it.each([
    ['lambda', 'eu-west-1', {}, 'lambda.eu-west-1.amazonaws.com'],
    ['sts', 'cn-northwest-1', {}, 'sts.cn-northwest-1.amazonaws.com.cn'],
    ['lambda', 'us-iso-east-1', {}, 'lambda.us-iso-east-1.c2s.ic.gov'],
    ['lambda', 'us-east-1', fips, 'lambda-fips.us-east-1.amazonaws.com'],
    ['sts', 'us-east-2', fips, 'sts-fips.us-east-2.amazonaws.com'],
    ['s3', 'us-gov-west-1', fips, 's3-fips.us-gov-west-1.amazonaws.com'],
    ['sts', 'us-gov-west-1', fips, 'sts.us-gov-west-1.amazonaws.com'],
    ['lambda', 'eu-west-1', dualStack, 'lambda.eu-west-1.api.aws'],
    ['s3', 'eu-west-1', dualStack, 's3.dualstack.eu-west-1.amazonaws.com'],
    ['s3', 'us-east-1', { ...fips, ...dualStack }, 's3-fips.dualstack.us-east-1.amazonaws.com'],
  ] as const)('%s in %s with %j: %s', (service, region, env, host) => {
    expect(regionalHost(service, region, env)).toBe(host);
  });

  it('puts a FIPS bucket’s own host name under s3-fips', () => {
    expect(s3ObjectUrl({ region: 'us-east-1' }, 'kw-reports', 'k', fips).host).toBe(
      'kw-reports.s3-fips.us-east-1.amazonaws.com',
    );
  });
});
