//! Generated types and stubs of the internal gRPC API (`proto/`): GC and MC are each the
//! server of one service and the client of the other, so both live here.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

/// `convene.internal.v1`: `MeetingControllerService` (served by MC on 50052) and
/// `GlobalControllerService` (served by GC on 50051).
pub mod internal {
    pub mod v1 {
        tonic::include_proto!("convene.internal.v1");
    }
}

/// Joins in one `JoinParticipants` call, at most: MC refuses more, GC never sends more
/// (`meeting_controller.proto`).
pub const MAX_JOINS_PER_CALL: usize = 256;
