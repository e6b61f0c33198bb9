//! [`DropOffThread`]: closing a librdkafka client blocks — the last handle joins the client's
//! threads, and a producer first purges what it still holds and serves those reports — so the
//! last handle is dropped on a thread of its own. A Kafka cluster holds its producer client so,
//! which lets a stopping app return once everything is flushed and lets any owner of a cluster
//! (a producer handle, a transport, Python's wrappers) drop it anywhere. Python's runtime
//! objects hold their consumers so too: Python drops objects with the GIL held while a
//! librdkafka thread may be waiting for the GIL (to log), and joining it there would deadlock.

/// Owns a value whose drop may block and drops it on a thread of its own.
pub(crate) struct DropOffThread<T: Send + 'static>(Option<T>);

impl<T: Send + 'static> DropOffThread<T> {
    pub(crate) fn new(value: T) -> Self {
        Self(Some(value))
    }

    /// The value, to drop or use where dropping it may block.
    #[cfg_attr(not(feature = "python"), allow(dead_code))]
    pub(crate) fn into_inner(mut self) -> T {
        self.0.take().expect("present until dropped")
    }
}

impl<T: Send + 'static> std::ops::DerefMut for DropOffThread<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.0.as_mut().expect("present until dropped")
    }
}

impl<T: Send + 'static> std::ops::Deref for DropOffThread<T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.0.as_ref().expect("present until dropped")
    }
}

impl<T: Send + 'static> Drop for DropOffThread<T> {
    fn drop(&mut self) {
        if let Some(value) = self.0.take() {
            let spawned = std::thread::Builder::new()
                .name("fastkafka-drop".to_owned())
                .spawn(move || drop(value));
            if let Err(error) = spawned {
                // The closure, and the value with it, was dropped here instead.
                tracing::error!(%error, "could not close a Kafka client on a thread of its own");
            }
        }
    }
}
