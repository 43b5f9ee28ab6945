//! The system tests: AC, GC and meeting controllers started together in the test process (the
//! controllers on runtimes of their own, or as processes of their own when a test kills one),
//! against real PostgreSQL and Redis, and driven through their public interfaces, REST and the
//! signaling WebSocket. What tests one service, with whatever peers it needs, stays in that
//! service's `tests/`; what needs them all, a socket's life between MC and GC and the metric
//! catalogs of the three, is here, in `tests/system/`.
//!
//! This library is empty on purpose: the crate exists for its tests, and is never published
//! or depended on.
