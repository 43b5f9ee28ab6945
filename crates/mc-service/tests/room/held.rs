//! The rooms an MC holds are kept alive while their meetings run, and forgotten once another MC
//! holds them or they are gone.

use deadpool_redis::redis::cmd;
use mc_service::held::{HeldRooms, renew_held};
use mc_service::room::FencingToken;
use tokio_util::sync::CancellationToken;

use crate::on_both_backends;
use crate::support::{Harness, TTL, settings};

async fn shorten(h: &Harness, code: &common::meeting_code::MeetingCode) {
    for key in h.store.keys(code).all() {
        let _: i64 = h
            .store
            .redis()
            .query(cmd("PEXPIRE").arg(key).arg(500))
            .await
            .unwrap();
    }
}

async fn a_held_room_is_renewed_and_forgotten_once_fenced_or_gone(h: Harness) {
    let held = HeldRooms::default();
    let kept = h.room(10, true).await;
    let taken = h.room(10, true).await;
    let ended = h.room(10, true).await;
    for room in [&kept, &taken, &ended] {
        held.hold(room.code(), FencingToken(1));
    }
    shorten(&h, kept.code()).await;
    // Another MC takes one room over; one ends.
    h.store
        .assign(
            taken.code(),
            &Harness::meta(10, settings(true)),
            FencingToken(2),
            "mc-b",
        )
        .await
        .unwrap();
    ended.end().await.unwrap();

    let renewed = renew_held(&h.store, &held, &CancellationToken::new()).await;

    assert_eq!((renewed, held.count()), (1, 1));
    let floor = i64::try_from(TTL.as_millis()).unwrap() / 2;
    for (key, pttl) in h.pttls(&h.store.keys(kept.code())).await {
        if pttl != -2 {
            assert!(pttl > floor, "{key} has PTTL {pttl} after renewal");
        }
    }
}

on_both_backends!(a_held_room_is_renewed_and_forgotten_once_fenced_or_gone);
