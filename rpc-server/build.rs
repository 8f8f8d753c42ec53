//! Rebuilds when a migration is added: `sqlx::migrate!` embeds the migrations directory
//! at compile time, and cargo does not otherwise know that it reads it.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
