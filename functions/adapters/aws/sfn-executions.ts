/**
 * Step Functions' `StartExecution` and `DescribeExecution` as one SigV4-signed `fetch` each
 * (signed-fetch.ts): what the revocation campaign launcher (campaign-launcher.ts) calls to start
 * the revocation state machine and to follow an execution. The API's campaigns, the Slack worker,
 * the use monitor and the exposure scanner launch campaigns and call nothing else of Step
 * Functions, so none carries the SDK's SFN client (~22 kB of schemas, error classes and
 * commands for the whole API, and its share of every cold start).
 *
 * The protocol is AWS JSON 1.0: `POST /` with `X-Amz-Target: AWSStepFunctions.<Operation>`, the
 * input as JSON, signed for `states`; a refusal names its error in the body's `__type`
 * (`ExecutionAlreadyExists`, possibly behind a `namespace#`) and says why in `message`. Answers are
 * validated (timestamps are epoch seconds); an answer that cannot be read is refused with its size
 * alone. An execution's input never appears in an error: it names the campaign's identities.
 */
import { loadJsonRpcErrorCode } from '@smithy/core/protocols';
import * as z from 'zod';
import { onFirstUse } from '../../core/on-first-use.ts';
import { isRetryableAwsError } from './clients.ts';
import type { AwsEndpoint } from './endpoint.ts';
import {
  AwsRequestError,
  type FailureReader,
  lostAnswer,
  type SignedServiceOptions,
  signedService,
} from './signed-fetch.ts';

/** Step Functions' names for how an execution ended, or that it runs. */
export const ExecutionStatusSchema = z.enum([
  'RUNNING',
  'SUCCEEDED',
  'FAILED',
  'TIMED_OUT',
  'ABORTED',
  'PENDING_REDRIVE',
]);
export type ExecutionStatus = z.infer<typeof ExecutionStatusSchema>;

/** A JSON protocol timestamp: epoch seconds, fractions allowed; read as a Date. */
const epochSeconds = () =>
  z
    .number()
    .nonnegative()
    .transform((seconds) => new Date(seconds * 1000));

/** What `StartExecution` answers: the execution's ARN and when it started. */
const StartedSchema = onFirstUse(() =>
  z.object({
    executionArn: z.string().min(1),
    startDate: epochSeconds(),
  }),
);
export type StartedExecution = z.infer<typeof StartedSchema>;

/**
 * What `DescribeExecution` answers, as keywarden reads it: how the execution stands, and its
 * error and cause once it failed. Its `input` and `output` are left out (they name identities).
 */
const DescribedSchema = onFirstUse(() =>
  z.object({
    executionArn: z.string().min(1),
    stateMachineArn: z.string().min(1),
    status: ExecutionStatusSchema,
    startDate: epochSeconds(),
    stopDate: epochSeconds().optional(),
    error: z.string().optional(),
    cause: z.string().optional(),
  }),
);
export type DescribedExecution = z.infer<typeof DescribedSchema>;

/** One execution to start: of `stateMachineArn`, named `name` (unique per state machine), with `input` (JSON text). */
export interface ExecutionStart {
  stateMachineArn: string;
  name: string;
  input: string;
}

/**
 * The two Step Functions operations the campaign launcher calls.
 *
 * @throws SfnRequestError: `name` is Step Functions' error code ({@link isExecutionAlreadyExists}
 *   tells the refusal of a name already used), `retryable` once the retries are spent on
 *   throttling, a server error or no answer; `UnreadableAnswer` for a 2xx answer not as expected.
 */
export interface SfnExecutions {
  /**
   * Starts one execution. Step Functions answers a second start of a name that still runs with
   * the same input with the same execution (so a retried attempt is safe), and refuses a name
   * that has run, or runs with another input (`ExecutionAlreadyExists`).
   */
  start(execution: ExecutionStart): Promise<StartedExecution>;
  /** How the execution `executionArn` stands. */
  describe(executionArn: string): Promise<DescribedExecution>;
}

/** Step Functions refused a request, did not answer, or answered what cannot be read: `name` is its error code. */
export class SfnRequestError extends AwsRequestError {}

/** Whether `error` is Step Functions refusing an execution name already used (`ExecutionAlreadyExists`). */
export const isExecutionAlreadyExists = (error: unknown): boolean =>
  error instanceof SfnRequestError && error.name === 'ExecutionAlreadyExists';

/** The longest part of Step Functions' message kept in an error: a message is a sentence and an ARN. */
const MESSAGE_LIMIT = 300;

/**
 * Step Functions' message, made safe to show: without the execution's input should it be quoted,
 * capped. A refused input is worded here alone (its message may quote a part of the input).
 */
function safeMessage(message: string, input: string | undefined): string {
  const safe = input ? message.split(input).join('[the execution input]') : message;
  return safe.length > MESSAGE_LIMIT ? `${safe.slice(0, MESSAGE_LIMIT)}…` : safe;
}

/** A body's JSON, or undefined (never V8's message: it quotes the text). */
function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** How Step Functions' failures read (the JSON protocol's `__type` and `message`), for a request whose input is `input`. */
function sfnFailures(input?: string): FailureReader<SfnRequestError> {
  return {
    refused: ({ status, headers, text }) => {
      const body = parseJson(text);
      const fields = (typeof body === 'object' && body !== null ? body : {}) as {
        message?: unknown;
        Message?: unknown;
      };
      const code =
        loadJsonRpcErrorCode({ statusCode: status, headers: Object.fromEntries(headers) }, fields) ??
        (status >= 500 ? 'InternalServerError' : `HTTP${status}`);
      const said = fields.message ?? fields.Message;
      const worded =
        code === 'InvalidExecutionInput' && input !== undefined
          ? `the execution input (${Buffer.byteLength(input)} bytes) was refused`
          : safeMessage(typeof said === 'string' ? said : '', input);
      // Without its closing period: awsFailure adds its own after the answer.
      const message = worded.replace(/\.\s*$/, '') || `HTTP ${status}`;
      const retryable = isRetryableAwsError({ name: code, $metadata: { httpStatusCode: status } });
      return new SfnRequestError(code, status, message, retryable);
    },
    lost: lostAnswer(SfnRequestError, 'Step Functions', (message) => safeMessage(message, input)),
  };
}

/** Reads a 2xx answer of `operation` with `schema`; refuses one that is not JSON or not of that shape, quoting none of it. */
function readAnswer<T>(
  operation: string,
  schema: z.ZodType<T>,
  { status, text }: { status: number; text: string },
): T {
  const parsed = schema.safeParse(parseJson(text));
  if (parsed.success) return parsed.data;
  const fields = parsed.error.issues.map((issue) => issue.path.join('.') || '(the answer)');
  throw new SfnRequestError(
    'UnreadableAnswer',
    status,
    `Step Functions answered ${operation} with HTTP ${status} and ${Buffer.byteLength(text)} bytes that are not what ${operation} answers (${[...new Set(fields)].join(', ')})`,
    false,
  );
}

/**
 * {@link SfnExecutions} over a signed `fetch`, with the endpoint's credentials or the default chain
 * (in Lambda, the execution role's), retried as the SDK retries. Its endpoint is `endpoint`'s, else
 * the environment's as the SDK's client would take it (`AWS_ENDPOINT_URL_SFN`, `AWS_ENDPOINT_URL`),
 * else Step Functions' regional one (FIPS or dual-stack as the environment asks).
 */
export function signedSfnExecutions(
  endpoint: AwsEndpoint,
  options: SignedServiceOptions = {},
): SfnExecutions {
  const { url, send } = signedService('states', endpoint, options);
  const call = (operation: string, body: object, input?: string) =>
    send(
      {
        method: 'POST',
        url,
        headers: {
          'content-type': 'application/x-amz-json-1.0',
          'x-amz-target': `AWSStepFunctions.${operation}`,
        },
        body: JSON.stringify(body),
      },
      sfnFailures(input),
    );
  return {
    async start({ stateMachineArn, name, input }) {
      const answer = await call('StartExecution', { stateMachineArn, name, input }, input);
      return readAnswer('StartExecution', StartedSchema, answer);
    },
    async describe(executionArn) {
      const answer = await call('DescribeExecution', { executionArn });
      return readAnswer('DescribeExecution', DescribedSchema, answer);
    },
  };
}
