//! Service users. (In progress.)
