//! rivulet-client
