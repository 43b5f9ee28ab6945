//! `sqlx::migrate!` embeds the migration files at compile time; without this, adding a migration
//! would not rebuild the binary and the new file would silently be missing from it.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
