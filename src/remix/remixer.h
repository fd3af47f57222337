#pragma once
// Everything a command needs to run test-time re-mixing: the session that methods share
// (session.h, with embedder.h and prefix_cache.h), the methods (remix_method.h, icl.h) and their
// per-item traces (trace.h).
#include "remix/icl.h"
#include "remix/remix_method.h"
#include "remix/session.h"
#include "remix/trace.h"
