/**
 * The grants function: API Gateway sends it the CLI's break-glass routes (`/roles`,
 * `/grants…`, SigV4) and nothing else. It builds break-glass (the issuers, STS for roles, the
 * expiry schedules, early revocation through the role-deny function) and the per-grant report,
 * and routes over {@link GRANT_ROUTES} only: a campaign or CI route is a 404 here.
 */
import { breakglass, Composition, grantReports } from '../adapters/composition.ts';
import { GRANT_ROUTES } from '../api/routes.ts';
import { inLambda, makeApiHandler } from './api.ts';
import { loadLambdaConfig } from './lambda-config.ts';
import { entryPoint } from './wrap.ts';

/** The Lambda entry point: break-glass grants for the CLI. */
export const handler = entryPoint(async () => {
  const config = await loadLambdaConfig();
  const composition = new Composition(config);
  return makeApiHandler(
    {
      breakglass: composition.get(breakglass),
      report: composition.get(grantReports),
      ...inLambda(config),
    },
    GRANT_ROUTES,
  );
});
