"""CIFAR-10: 60,000 32x32 colour images in 10 classes (Krizhevsky, 2009), official python archive."""

from kdbench.datasets.cifar import Spec

SPEC = Spec(
    name="cifar10",
    title="CIFAR-10",
    class_names=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    filename="cifar-10-python.tar.gz",
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    sha256="6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",  # as keras.datasets.cifar10
    folder="cifar-10-batches-py",
    train_members=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_member="test_batch",
    meta_member="batches.meta",
    label_key=b"labels",
    train_size=50_000,
    test_size=10_000,
)
