//! How a connection ends, and the gauges and counters of a socket's life.

use super::super::hub::CloseOrder;

/// How a connection ended, which decides what happens to the user's seat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct End {
    /// The close frame to send; `None` when the client is gone already.
    pub(super) code: Option<u16>,
    pub(super) reason: &'static str,
    /// The user keeps their seat for the reconnect grace (a connection problem), rather than
    /// the close settling where they stand (they left, were rejected, the meeting ended).
    pub(super) grace: bool,
}

impl End {
    pub(crate) fn settled(code: u16, reason: &'static str) -> Self {
        End {
            code: Some(code),
            reason,
            grace: false,
        }
    }

    /// Closed by the server for a problem of the connection: the seat waits for a reconnect.
    pub(crate) fn troubled(code: u16, reason: &'static str) -> Self {
        End {
            code: Some(code),
            reason,
            grace: true,
        }
    }

    /// The client is gone (or closed first): no close frame, and the seat waits for a
    /// reconnect.
    pub(super) fn dropped() -> Self {
        End {
            code: None,
            reason: "",
            grace: true,
        }
    }

    pub(super) fn ordered(order: CloseOrder) -> Self {
        End {
            code: Some(order.code),
            reason: order.reason,
            grace: order.grace,
        }
    }
}

/// Counts the socket as open while it lives.
pub(super) struct OpenGauge;

impl OpenGauge {
    pub(super) fn new() -> Self {
        metrics::gauge!("mc_ws_connections_open").increment(1.0);
        Self
    }
}

impl Drop for OpenGauge {
    fn drop(&mut self) {
        metrics::gauge!("mc_ws_connections_open").decrement(1.0);
    }
}

/// Counts the socket as waiting in a lobby while it does.
#[derive(Default)]
pub(super) struct Waiting(bool);

impl Waiting {
    pub(super) fn set(&mut self, waiting: bool) {
        if waiting != self.0 {
            let gauge = metrics::gauge!("mc_lobby_waiting_sockets");
            if waiting {
                gauge.increment(1.0);
            } else {
                gauge.decrement(1.0);
            }
            self.0 = waiting;
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.set(false);
    }
}

pub(super) fn closed_metric(code: u16) {
    metrics::counter!("mc_ws_closes_total", "code" => code.to_string()).increment(1);
}

/// Counts one message sent, by its `type`.
pub(super) fn sent(kind: &'static str) {
    metrics::counter!("mc_ws_messages_sent_total", "type" => kind).increment(1);
}

/// Counts one message received, by its `type` (or `binary`, `invalid`).
pub(super) fn received(kind: &'static str) {
    metrics::counter!("mc_ws_messages_received_total", "type" => kind).increment(1);
}
