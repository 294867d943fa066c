//! Makes release builds re-embed the web console when `web/dist` changes. Release builds embed
//! the files at compile time (`src/console.rs`), but a derive macro cannot tell Cargo which
//! directory it read, so a console built after the server (or rebuilt with new hashed file
//! names) would otherwise be missed. Debug builds read `web/dist` at run time and need nothing.

fn main() {
    if std::env::var("PROFILE").as_deref() == Ok("release") {
        // A directory is scanned recursively; a missing one makes every release build re-run
        // this script, which is what we want until the console exists.
        println!("cargo:rerun-if-changed=../../web/dist");
    } else {
        println!("cargo:rerun-if-changed=build.rs");
    }
}
