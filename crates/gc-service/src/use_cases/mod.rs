//! GC's operations on meetings, one module per use case, independent of the transport that
//! calls them: each takes its dependencies and the authenticated caller as arguments and
//! returns [`crate::error::Error`], so the REST handlers in `routes/` (and the gRPC methods
//! to come) are thin adapters over the same code.

pub mod create;
