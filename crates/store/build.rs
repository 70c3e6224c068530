//! Rebuild when a migration is added: `sqlx::migrate!` embeds the directory's files but
//! cannot tell cargo about files that did not exist at the last build.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
