//! Sequential twins of the rayon methods the workspace uses, for builds without the `threads`
//! feature: `par_chunks_mut`, `par_chunks`, `par_iter` and `into_par_iter` return a [`Seq`]
//! iterator, whose `map` / `zip` / `enumerate` keep it a `Seq` and whose `reduce(identity, op)`
//! and `with_min_len` / `with_max_len` take rayon's arguments. Everything else comes from
//! [`Iterator`].

/// A sequential stand-in for a rayon parallel iterator.
pub struct Seq<I>(I);

impl<I: Iterator> Iterator for Seq<I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        self.0.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl<I: Iterator> Seq<I> {
    /// As rayon's `map`.
    pub fn map<B, F: FnMut(I::Item) -> B>(self, f: F) -> Seq<std::iter::Map<I, F>> {
        Seq(self.0.map(f))
    }

    /// As rayon's `zip`.
    pub fn zip<J: IntoIterator>(self, other: J) -> Seq<std::iter::Zip<I, J::IntoIter>> {
        Seq(self.0.zip(other))
    }

    /// As rayon's `enumerate`.
    pub fn enumerate(self) -> Seq<std::iter::Enumerate<I>> {
        Seq(self.0.enumerate())
    }

    /// As rayon's `reduce`: folds from `identity()` in order.
    pub fn reduce<ID, OP>(self, identity: ID, op: OP) -> I::Item
    where
        ID: Fn() -> I::Item,
        OP: Fn(I::Item, I::Item) -> I::Item,
    {
        self.0.fold(identity(), op)
    }

    /// A scheduling hint of rayon's; no effect here.
    pub fn with_min_len(self, _min: usize) -> Self {
        self
    }

    /// A scheduling hint of rayon's; no effect here.
    pub fn with_max_len(self, _max: usize) -> Self {
        self
    }
}

/// `into_par_iter()` for anything iterable (ranges, vectors).
pub trait IntoParallelIterator: IntoIterator + Sized {
    /// The items in order, on this thread.
    fn into_par_iter(self) -> Seq<Self::IntoIter> {
        Seq(self.into_iter())
    }
}

impl<T: IntoIterator> IntoParallelIterator for T {}

/// `par_iter()` for slices (and vectors through deref).
pub trait IntoParallelRefIterator<T> {
    /// The items by reference, in order, on this thread.
    fn par_iter(&self) -> Seq<std::slice::Iter<'_, T>>;
}

impl<T> IntoParallelRefIterator<T> for [T] {
    fn par_iter(&self) -> Seq<std::slice::Iter<'_, T>> {
        Seq(self.iter())
    }
}

/// `par_chunks()` for slices.
pub trait ParallelSlice<T> {
    /// Chunks of `size` (the last may be shorter), in order, on this thread.
    fn par_chunks(&self, size: usize) -> Seq<std::slice::Chunks<'_, T>>;
}

impl<T> ParallelSlice<T> for [T] {
    fn par_chunks(&self, size: usize) -> Seq<std::slice::Chunks<'_, T>> {
        Seq(self.chunks(size))
    }
}

/// `par_chunks_mut()` for slices.
pub trait ParallelSliceMut<T> {
    /// Mutable chunks of `size` (the last may be shorter), in order, on this thread.
    fn par_chunks_mut(&mut self, size: usize) -> Seq<std::slice::ChunksMut<'_, T>>;
}

impl<T> ParallelSliceMut<T> for [T] {
    fn par_chunks_mut(&mut self, size: usize) -> Seq<std::slice::ChunksMut<'_, T>> {
        Seq(self.chunks_mut(size))
    }
}
