use auth_macros::Roles;

#[derive(Clone, Copy, PartialEq, Eq, Roles)]
enum AppRoles {
    Owner,
    #[role(rename = "owner")]
    CoOwner,
    Member,
}

fn main() {}
