//! Node bindings of `crm_core::analytics` and `crm_core::segment`.
