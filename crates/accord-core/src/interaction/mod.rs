//! What agents do with each other, as records in their chains:
//! [`session`] (the co-signed session handshake, interactions and their
//! countersignatures, session end: the messages and the checks each side
//! runs), [`participant`] (one agent's side of sessions as a state machine
//! with no I/O: what to record and send for each message), [`handoff`] (signed handoff receipts and the verify-before-act
//! check), and [`audit`] (matching several chains against each other, and
//! the trust score).

pub mod audit;
pub mod handoff;
pub mod participant;
pub mod session;
