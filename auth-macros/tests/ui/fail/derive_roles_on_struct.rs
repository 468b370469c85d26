use auth_macros::Roles;

#[derive(Clone, Copy, PartialEq, Eq, Roles)]
struct Admin;

fn main() {}
