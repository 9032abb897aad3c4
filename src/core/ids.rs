//! Ids of configured entities: indexes into the loaded configuration's lists, given a type each
//! so that a route's id can never be passed where a consumer's is meant.

macro_rules! entity_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(usize);

        impl $name {
            pub const fn new(index: usize) -> $name {
                $name(index)
            }

            /// The position in the configuration's list.
            pub const fn index(self) -> usize {
                self.0
            }
        }
    };
}

entity_id!(
    /// A service of the loaded configuration.
    ServiceId
);
entity_id!(
    /// A route of the loaded configuration.
    RouteId
);
entity_id!(
    /// A consumer of the loaded configuration.
    ConsumerId
);
