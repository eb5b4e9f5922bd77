/** A `fetch` for unit specs of the signed-fetch adapters: answers each call from a script, recording the requests. */
export function scriptedFetch(...answers: (() => Response)[]) {
  const requests: { url: string; init: RequestInit }[] = [];
  const fetchFn = (async (url: URL | string, init?: RequestInit) => {
    requests.push({ url: String(url), init: init ?? {} });
    const answer = answers[requests.length - 1];
    if (!answer) throw new Error('no more answers');
    return answer();
  }) as typeof fetch;
  return { requests, fetchFn };
}

/** Retries without waiting. */
export const noSleep = async (): Promise<void> => {};
