//! Who hosts a room (DESIGN §12): the hand-over, the succession when the host's seat ends,
//! nobody hosting, the creator taking the role back, and races that must never leave two
//! hosts.

use std::sync::Arc;

use futures::future::join_all;
use mc_service::room::{
    Admission, HostChange, LeaveOutcome, RemoveOutcome, Role, RoomState, TransferOutcome,
};

use crate::on_both_backends;
use crate::support::{Harness, Room, now, user};

fn role_of(state: &RoomState, user_id: &str) -> Option<Role> {
    state
        .participants
        .iter()
        .find(|p| p.user_id == user_id)
        .map(|p| p.role)
}

/// Seats the host (user 0) and members 1..=n in a room without a waiting room.
async fn seated_room(h: &Harness, members: usize) -> Room<'_> {
    let room = h.room(20, false).await;
    room.join_as(&user(0), Role::Host).await;
    for n in 1..=members {
        room.join_as(&user(n), Role::Guest).await;
    }
    room
}

async fn transfer(room: &Room<'_>, from: &str, to: &str) -> TransferOutcome {
    let out = room
        .h
        .store
        .transfer_host(&room.owned, from, to)
        .await
        .unwrap();
    room.check().await;
    out
}

async fn a_hand_over_moves_the_role_and_both_seats_say_so(h: Harness) {
    let room = seated_room(&h, 2).await;

    let out = transfer(&room, &user(0), &user(2)).await;

    assert!(matches!(out, TransferOutcome::Transferred { seq: 1 }));
    let state = room.state().await;
    assert_eq!(state.host_id, user(2));
    assert_eq!(state.host_seq, 1);
    assert_eq!(state.creator_id, user(0));
    assert_eq!(role_of(&state, &user(0)), Some(Role::Guest));
    assert_eq!(role_of(&state, &user(2)), Some(Role::Host));
    // The same hand-over again changes nothing; the former host can no longer hand over.
    assert_eq!(
        transfer(&room, &user(2), &user(2)).await,
        TransferOutcome::Transferred { seq: 1 }
    );
    assert_eq!(
        transfer(&room, &user(0), &user(1)).await,
        TransferOutcome::NotHost {
            host: HostChange {
                host: Some(user(2)),
                seq: 1
            }
        }
    );
}

async fn only_a_seated_member_can_be_made_the_host(h: Harness) {
    let room = h.room(20, true).await;
    room.join_as(&user(0), Role::Host).await;
    room.join_guest(&user(5), "Gus", 10).await.unwrap();
    room.admit(&user(5)).await.unwrap();
    // Someone of another org (GC says: not a member), seated.
    room.h
        .store
        .join(
            &room.owned,
            &user(6),
            "Ext",
            Role::Guest,
            None,
            false,
            now(),
        )
        .await
        .unwrap();
    room.admit(&user(6)).await.unwrap();
    room.join_as(&user(7), Role::Guest).await; // waiting

    assert_eq!(
        transfer(&room, &user(0), &user(5)).await,
        TransferOutcome::NotMember
    );
    assert_eq!(
        transfer(&room, &user(0), &user(6)).await,
        TransferOutcome::NotMember
    );
    assert_eq!(
        transfer(&room, &user(0), &user(7)).await,
        TransferOutcome::NotSeated
    );
    assert_eq!(
        transfer(&room, &user(0), &user(9)).await,
        TransferOutcome::NotSeated
    );
    assert_eq!(room.state().await.host_id, user(0));
}

async fn the_hosts_leave_passes_the_role_to_the_member_seated_longest(h: Harness) {
    let room = h.room(20, false).await;
    room.join_as(&user(0), Role::Host).await;
    room.join_guest(&user(5), "Gus", 10).await.unwrap();
    room.admit(&user(5)).await.unwrap(); // seated before the members, but a guest
    room.join_as(&user(2), Role::Guest).await;
    room.join_as(&user(1), Role::Guest).await;

    let left = room.leave(&user(0)).await.unwrap();

    let LeaveOutcome::Left { host_change, .. } = left else {
        panic!("{left:?}");
    };
    assert_eq!(
        host_change,
        Some(HostChange {
            host: Some(user(2)),
            seq: 1
        })
    );
    let state = room.state().await;
    assert_eq!(state.host_id, user(2));
    assert_eq!(role_of(&state, &user(2)), Some(Role::Host));
    // A guest's or another member's leave passes nothing on.
    let left = room.leave(&user(1)).await.unwrap();
    assert!(matches!(
        left,
        LeaveOutcome::Left {
            host_change: None,
            ..
        }
    ));
}

async fn with_no_member_left_nobody_hosts_until_the_creator_comes_back(h: Harness) {
    let room = h.room(20, true).await;
    room.join_as(&user(0), Role::Host).await;
    room.join_guest(&user(5), "Gus", 10).await.unwrap();
    room.admit(&user(5)).await.unwrap();

    let left = room.leave(&user(0)).await.unwrap();

    assert!(matches!(
        left,
        LeaveOutcome::Left {
            host_change: Some(HostChange { host: None, seq: 1 }),
            ..
        }
    ));
    let state = room.state().await;
    assert_eq!(state.host_id, "");
    // A member who joins now waits (nobody can let them in), and so does anyone GC still
    // believes to host.
    assert_eq!(
        room.join_as(&user(3), Role::Guest).await.admission,
        Admission::Waiting
    );
    assert_eq!(
        room.join_as(&user(4), Role::Host).await.admission,
        Admission::Waiting
    );
    // The creator takes the role back by joining, whatever role GC saw.
    let back = room.join_as(&user(0), Role::Guest).await;
    assert_eq!(back.admission, Admission::Admitted);
    assert_eq!(back.role, Role::Host);
    assert_eq!(
        back.host_change,
        Some(HostChange {
            host: Some(user(0)),
            seq: 2
        })
    );
    assert_eq!(room.state().await.host_id, user(0));
}

async fn a_waiting_creator_takes_the_role_back_by_joining_again(h: Harness) {
    let room = h.room(20, true).await;
    room.join_as(&user(0), Role::Host).await;
    room.join_guest(&user(5), "Gus", 10).await.unwrap();
    room.admit(&user(5)).await.unwrap();
    room.join_as(&user(1), Role::Guest).await;
    room.admit(&user(1)).await.unwrap();
    transfer(&room, &user(0), &user(1)).await;
    room.leave(&user(0)).await.unwrap();
    assert_eq!(
        room.join_as(&user(0), Role::Guest).await.admission,
        Admission::Waiting,
        "someone hosts: the creator waits like anyone"
    );
    room.leave(&user(1)).await.unwrap(); // only the guest stays: nobody hosts

    let back = room.join_as(&user(0), Role::Guest).await;

    assert_eq!(
        (back.admission, back.role),
        (Admission::Admitted, Role::Host)
    );
    let state = room.state().await;
    assert_eq!(state.host_id, user(0));
    assert!(state.lobby.is_empty());
}

async fn a_host_alone_who_leaves_stays_the_host(h: Harness) {
    let room = h.room(20, true).await;
    room.join_as(&user(0), Role::Host).await;
    room.join_as(&user(1), Role::Guest).await; // waiting

    let left = room.leave(&user(0)).await.unwrap();

    assert!(matches!(
        left,
        LeaveOutcome::Left {
            host_change: None,
            ..
        }
    ));
    assert_eq!(room.state().await.host_id, user(0));
    assert_eq!(
        room.join_as(&user(0), Role::Host).await.role,
        Role::Host,
        "they come back as the host"
    );
}

async fn the_room_refuses_to_remove_its_host(h: Harness) {
    let room = seated_room(&h, 1).await;
    transfer(&room, &user(0), &user(1)).await;

    assert_eq!(
        room.remove_outcome(&user(1)).await.unwrap(),
        RemoveOutcome::IsHost
    );
    assert!(matches!(
        room.remove_outcome(&user(0)).await.unwrap(),
        RemoveOutcome::Removed(LeaveOutcome::Left { .. })
    ));
}

/// The room's host and the seats' roles agree: exactly one seat is the host's, or none when
/// nobody hosts or the host is not seated.
async fn hosts_of(room: &Room<'_>) -> (String, Vec<String>) {
    let state = room.state().await;
    let seated_hosts = state
        .participants
        .iter()
        .filter(|p| p.role == Role::Host)
        .map(|p| p.user_id.clone())
        .collect();
    (state.host_id, seated_hosts)
}

/// Two hand-overs by the same host at once, 100 times: one wins, never two hosts.
async fn two_hand_overs_at_once_leave_one_host(h: Harness) {
    for trial in 0..100 {
        let room = seated_room(&h, 2).await;
        let start = Arc::new(tokio::sync::Barrier::new(2));
        let tasks = [1, 2].map(|to| {
            let (store, owned, start) = (h.store.clone(), room.owned.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                store.transfer_host(&owned, &user(0), &user(to)).await
            })
        });
        let outcomes: Vec<_> = join_all(tasks)
            .await
            .into_iter()
            .map(|r| r.unwrap().unwrap())
            .collect();
        let won = outcomes
            .iter()
            .filter(|o| matches!(o, TransferOutcome::Transferred { .. }))
            .count();
        assert_eq!(won, 1, "trial {trial}: {outcomes:?}");
        let (host, seated_hosts) = hosts_of(&room).await;
        assert_eq!(seated_hosts, vec![host.clone()], "trial {trial}");
        assert!(host == user(1) || host == user(2), "trial {trial}");
        room.check().await;
    }
}

/// A hand-over racing the host's leave, 100 times: whichever comes first, exactly one member
/// hosts afterwards (the one handed to, or the successor), and the host who left holds nothing.
async fn a_hand_over_racing_the_hosts_leave_leaves_one_host(h: Harness) {
    for trial in 0..100 {
        let room = seated_room(&h, 2).await;
        let start = Arc::new(tokio::sync::Barrier::new(2));
        let hand_over = {
            let (store, owned, start) = (h.store.clone(), room.owned.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                store.transfer_host(&owned, &user(0), &user(2)).await
            })
        };
        let leave = {
            let (store, owned, start) = (h.store.clone(), room.owned.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                store.leave(&owned, &user(0), "left").await
            })
        };
        let handed = hand_over.await.unwrap().unwrap();
        let left = leave.await.unwrap().unwrap();
        let (host, seated_hosts) = hosts_of(&room).await;
        assert_eq!(seated_hosts, vec![host.clone()], "trial {trial}");
        match handed {
            // The hand-over came first: the leave of a former host passes nothing on.
            TransferOutcome::Transferred { .. } => {
                assert_eq!(host, user(2), "trial {trial}");
                assert!(
                    matches!(
                        left,
                        LeaveOutcome::Left {
                            host_change: None,
                            ..
                        }
                    ),
                    "trial {trial}"
                );
            }
            // The leave came first: the role went to the member seated longest.
            TransferOutcome::NotHost {
                host: HostChange {
                    host: Some(next), ..
                },
            } => {
                assert_eq!(next, user(1), "trial {trial}");
                assert_eq!(host, user(1), "trial {trial}");
            }
            other => panic!("trial {trial}: {other:?}"),
        }
        room.check().await;
    }
}

on_both_backends!(
    a_hand_over_moves_the_role_and_both_seats_say_so,
    only_a_seated_member_can_be_made_the_host,
    the_hosts_leave_passes_the_role_to_the_member_seated_longest,
    with_no_member_left_nobody_hosts_until_the_creator_comes_back,
    a_host_alone_who_leaves_stays_the_host,
    a_waiting_creator_takes_the_role_back_by_joining_again,
    the_room_refuses_to_remove_its_host,
    two_hand_overs_at_once_leave_one_host,
    a_hand_over_racing_the_hosts_leave_leaves_one_host,
);
