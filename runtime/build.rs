//! Only tells cargo what the link depends on beyond the sources: `make
//! build` links ozz in the order of hack/hot-functions.txt (the linker
//! wrapper hack/link-ordered reads it), and a new list must relink.
fn main() {
    println!("cargo:rerun-if-changed=../hack/hot-functions.txt");
}
