//! Prints the signaling protocol's JSON Schema (`docs/signaling.schema.json`), as
//! `scripts/signaling-schema.sh` checks it in: `cargo run -q -p mc-service --example
//! signaling-schema`.

fn main() {
    print!("{}", mc_service::signaling::schema::document());
}
