//! The Lua scripts of the room operations, each the shared prelude followed by its own body.
//!
//! Every change that reads before it writes, or touches more than one key, is one script: Redis
//! runs a script alone, start to end, so no other client's command lands between its read and its
//! write (the capacity check and the seat are one step), and it costs one round trip. On a
//! cluster a script may only touch keys of one slot, which the `{code}` tag guarantees.

use deadpool_redis::redis::Script;

const PRELUDE: &str = include_str!("lua/prelude.lua");

pub(crate) struct RoomScripts {
    pub assign: Script,
    pub join: Script,
    pub admit: Script,
    pub admit_all: Script,
    pub reject: Script,
    pub leave: Script,
    pub remove: Script,
    pub transfer_host: Script,
    pub update_settings: Script,
    pub end_room: Script,
    pub touch: Script,
    pub set_active_speaker: Script,
    pub set_participant_fields: Script,
    pub state: Script,
}

impl RoomScripts {
    pub(crate) fn new() -> Self {
        let with_prelude = |body: &str| Script::new(&format!("{PRELUDE}\n{body}"));
        Self {
            assign: with_prelude(include_str!("lua/assign.lua")),
            join: with_prelude(include_str!("lua/join.lua")),
            admit: with_prelude(include_str!("lua/admit.lua")),
            admit_all: with_prelude(include_str!("lua/admit_all.lua")),
            reject: with_prelude(include_str!("lua/reject.lua")),
            leave: with_prelude(include_str!("lua/leave.lua")),
            remove: with_prelude(include_str!("lua/remove.lua")),
            transfer_host: with_prelude(include_str!("lua/transfer_host.lua")),
            update_settings: with_prelude(include_str!("lua/update_settings.lua")),
            end_room: with_prelude(include_str!("lua/end_room.lua")),
            touch: with_prelude(include_str!("lua/touch.lua")),
            set_active_speaker: with_prelude(include_str!("lua/set_active_speaker.lua")),
            set_participant_fields: with_prelude(include_str!("lua/set_participant_fields.lua")),
            state: with_prelude(include_str!("lua/state.lua")),
        }
    }
}
