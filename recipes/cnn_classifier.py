"""CNN classifier recipe: supervised pretraining on one task, transfer to another.

    python -m recipes.cnn_classifier --model_dir=runs/cnn              # digits 0-4 -> 5-9
    python -m recipes.cnn_classifier --dataset=mnist --target_dataset=kmnist \\
        --source_classes= --target_classes= --model_dir=runs/cnn-mnist-kmnist

The classifier pretrains with labels on --source_classes of --dataset; its
encoder (the conv trunk, globally pooled) then transfers to --target_classes of
--target_dataset (default: the same dataset), the classic Keras transfer
example's protocol. The exported `model/` doubles as the zoo's reference
classifier: endpoint `serve` gives logits, endpoint `features` the penultimate
features, for scoring other models' images offline.

From Python or a notebook:

    from recipes import cnn_classifier
    metrics = cnn_classifier.run(cnn_classifier.Config(model_dir="runs/cnn", epochs=5))
"""

import dataclasses

import keras
import numpy as np

import zoo
from recipes import figures, flow
from recipes.artifact import image_spec
from recipes.config import RecipeConfig, hyperparameter, new_default, option


def parse_classes(flag, text, num_classes):
    """'0-4' or '5,7,9' -> sorted label ids; '' -> all classes."""
    if not text.strip():
        return tuple(range(num_classes))
    classes = set()
    try:
        for part in text.split(","):
            low, _, high = part.strip().partition("-")
            classes.update(range(int(low), int(high or low) + 1))
    except ValueError:
        raise zoo.ZooError(f"--{flag}={text}: give label ids like 0-4 or 5,7,9") from None
    if not classes:
        raise zoo.ZooError(f"--{flag}={text}: the class set is empty")
    outside = sorted(c for c in classes if not 0 <= c < num_classes)
    if outside:
        raise zoo.ZooError(f"--{flag}={text}: no class {outside[0]}; the dataset has classes 0-{num_classes - 1}")
    return tuple(sorted(classes))


@dataclasses.dataclass
class Config(RecipeConfig):
    model_dir: str = new_default("model_dir", "runs/cnn_classifier")
    epochs: int = new_default("epochs", 15)
    label_budgets: tuple = new_default("label_budgets", (100, 500))
    model: str = option(
        "cnn_classifier",
        "Which classifier to build.",
        choices=tuple(zoo.list_models(family="cnn_classifier", include_tiny=True)),
    )
    filters: tuple = hyperparameter("Filters of each conv block.", minimum=1, nonempty=True)
    convs_per_block: int = hyperparameter("Convolutions per block.", minimum=1)
    dropout: float = hyperparameter("Dropout after each block and in the classifier's head.", minimum=0, below=1)
    dense_units: tuple = hyperparameter(
        "Hidden widths of the classifier's head; the last is the penultimate layer.", minimum=1
    )
    source_classes: str = option("0-4", "Dataset labels to pretrain on, e.g. 0-4 (empty: all).")
    target_classes: str = option("5-9", "Labels of the target task, e.g. 5-9 (empty: all).")


class CnnClassifier(flow.Recipe):
    family = "cnn_classifier"
    module = "recipes.cnn_classifier"
    Config = Config
    features = "the conv trunk, flattened or averaged as --model pools it (the classifier without its head)"

    def datasets(self, run):
        config = run.config
        source_classes = parse_classes("source_classes", config.source_classes, run.source.num_classes)
        target_classes = parse_classes("target_classes", config.target_classes, run.target.num_classes)
        if run.target is run.source:
            overlap = sorted(set(source_classes) & set(target_classes))
            if overlap:
                raise zoo.ZooError(
                    f"--source_classes={config.source_classes} and --target_classes={config.target_classes} "
                    f"share class {overlap[0]}: on one dataset the target task must be new classes"
                )
        return run.source.restrict(source_classes), run.target.restrict(target_classes)

    def compile(self, run, model):
        model.compile(
            optimizer=keras.optimizers.Adam(run.config.learning_rate),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
            jit_compile=run.config.jit_compile,
        )

    def endpoints(self, run, model):
        features = keras.Model(model.input, model.get_layer("head_logits").input, name="penultimate")
        spec = [image_spec(run.source.image_shape)]
        return {
            "serve": (lambda images: model(images, training=False), spec),
            "features": (lambda images: features(images, training=False), spec),
        }

    def figures(self, run, model):
        data, fig_dir = run.source, run.fig_dir
        logits = model.predict(data.eval_inputs, batch_size=512, verbose=0)
        predicted = np.argmax(logits, axis=-1)
        figures.confusion_matrix(data.eval_labels, predicted, data.class_names, f"{fig_dir}/confusion.png")
        wrong = np.flatnonzero(predicted != data.eval_labels)[:16]
        figures.titled_images(
            data.eval_inputs[wrong],
            [f"{data.class_names[data.eval_labels[i]]}→{data.class_names[predicted[i]]}" for i in wrong],
            f"{fig_dir}/misclassified.png",
        )


RECIPE = CnnClassifier()


def run(config: Config) -> dict:
    """Run the whole CNN classifier recipe for `config`; returns metrics.json's content."""
    return flow.run(RECIPE, config)


if __name__ == "__main__":
    flow.cli(run, Config)
