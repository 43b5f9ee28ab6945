//! Black-box tests of a deployed Convene stack: AC and GC over REST, MC over its signaling
//! WebSocket, and every service's `/metrics`, with the URLs and an admin client taken from the
//! environment (`CONVENE_AC_URL`, `CONVENE_GC_URL`, `CONVENE_MC_URL`,
//! `CONVENE_ADMIN_CLIENT_ID`, `CONVENE_ADMIN_CLIENT_SECRET`). The library is empty on purpose:
//! the tests and their fixtures are in `tests/env/`, and nothing here may depend on a crate of
//! ours, so that the tests see exactly what a client sees. How to run them: `README.md`.
