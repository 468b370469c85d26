use auth_macros::Roles;

#[derive(Clone, Copy, PartialEq, Eq, Roles)]
enum AppRoles {
    Owner,
    Admin { since: u32 },
    Member(u8),
}

fn main() {}
