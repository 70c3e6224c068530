//! Reserved domains and reserved TCP addresses. (In progress.)
