/*
 * serve.h - `schemagate serve` (SPEC section 1): run `up` (or, with
 * --wait, `wait`) with /livez, /readyz and /metrics already answering,
 * then stay as a sidecar that checks the schema every --check-interval.
 */
#ifndef SCHEMAGATE_SERVE_H
#define SCHEMAGATE_SERVE_H

#include "schemagate/config.h"

/*
 * Returns only when it is over: OK after a stop (SIGTERM, SIGINT) once the
 * database had been brought to the target; USAGE when --listen cannot be
 * bound; otherwise the outcome of the run that failed or was interrupted
 * (as `up` or `wait` would end), with err holding the reason.
 */
enum sg_outcome sg_serve(const struct sg_config *cfg, struct sg_error *err);

#endif
