/*
 * coordinator.h - runs one command (SPEC sections 1 and 5).
 *
 * States: connecting -> checking -> contending -> applying -> releasing
 * -> ready | failed. Every transition is logged once, where it is decided.
 */
#ifndef SCHEMAGATE_COORDINATOR_H
#define SCHEMAGATE_COORDINATOR_H

#include "schemagate/config.h"

/* Run cfg->command, one with a database other than serve (main.c picks
 * the module of the others). Returns the outcome (SPEC section 6); on failure err
 * holds the one-line reason, already logged. Never exits or execs. */
enum sg_outcome sg_run(const struct sg_config *cfg, struct sg_error *err);

#endif
