pub mod payments;
pub mod routing;
