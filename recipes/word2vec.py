"""Word2vec recipe: word vectors by skip-gram with negative sampling on unlabelled texts, transferred.

    python -m recipes.word2vec --manual_dir=aclImdb_v1.tar.gz --model_dir=runs/word2vec
    python -m recipes.word2vec --dataset=imdb_reviews --model_dir=runs/word2vec      # downloads with TFDS
    python -m recipes.word2vec --dataset=text_folder --manual_dir=my_texts --model_dir=runs/w2v-mine

Pretraining reads the texts of --train_split and of --unlabelled_split (IMDB's 50,000 unlabelled
reviews), never a label: the vocabulary (words and the most frequent pairs of adjacent words) is
fitted on them, then every word and word pair learns to predict its neighbours (see
zoo/word2vec.py). The exported encoder takes raw strings and returns the weighted mean of their
words' and word pairs' vectors; the artifact also holds `vectors.txt` (word2vec text format, what
gensim's `KeyedVectors.load_word2vec_format` reads) and `figures/neighbours.png`, the nearest words
of a few words.

From Python or a notebook, without flags:

    from recipes import word2vec
    metrics = word2vec.run(word2vec.Config(manual_dir="aclImdb", model_dir="runs/w2v", epochs=2))
"""

import dataclasses

import zoo
from recipes import figures, flow
from recipes.config import TextRecipeConfig, hyperparameter, new_default, option

# Words whose neighbours `figures/neighbours.png` shows (those in the vocabulary).
PROBE_WORDS = ("good", "bad", "great", "awful", "funny", "boring", "actor", "music", "plot", "horror")


@dataclasses.dataclass
class Config(TextRecipeConfig):
    model_dir: str = new_default("model_dir", "runs/word2vec")
    epochs: int = new_default("epochs", 5)
    batch_size: int = new_default("batch_size", 64)
    learning_rate: float = new_default("learning_rate", 3e-3)
    # Chosen on a validation slice of the IMDB subset's train split (benchmarks/README.md, "Text"):
    # the head on the frozen average learns faster at 1e-2, and the word vectors fine-tune at 0.3x.
    probe_learning_rate: float = new_default("probe_learning_rate", 1e-2)
    finetune_lr_factor: float = new_default("finetune_lr_factor", 0.3)
    model: str = option(
        "word2vec",
        "Which word2vec model to build.",
        choices=tuple(zoo.list_models(family="word2vec", include_tiny=True)),
    )
    embedding_dim: int = hyperparameter("Size of the word vectors, the encoder's features.", minimum=1)
    window: int = hyperparameter("Context words on each side of a word.", minimum=1)
    negatives: int = hyperparameter("Negative words drawn per word.", minimum=1)
    subsample: float = hyperparameter("Frequent-word subsampling threshold (0: keep every word).", minimum=0, below=1)
    pooling: str = hyperparameter(
        "How the encoder pools a text's word vectors: sif (each word weighted a / (a + its frequency in the "
        "pretraining texts): frequent words count less) or mean (all alike).",
        choices=("sif", "mean"),
    )
    sif_smoothing: float = hyperparameter("The a of --pooling=sif, in (0, 1).", positive=True, below=1)
    pairs: int = hyperparameter(
        "Word pairs in the vocabulary (0: words alone): the most frequent pairs of adjacent words in the "
        "pretraining texts, each with its own vector, pretrained to predict the words around it and "
        "averaged with the words.",
        minimum=0,
        maximum=1_000_000,
    )


class Word2vec(flow.TextRecipe):
    family = "word2vec"
    module = "recipes.word2vec"
    Config = Config
    features = (
        "the mean of the vectors of the text's words and word pairs (--pairs), each weighted by its smooth "
        "inverse frequency in the pretraining texts (--pooling=sif, the default) or all alike (--pooling=mean); "
        "padding, unknown words and pairs not in the vocabulary left out"
    )

    def artifacts(self, run, model):
        names = zoo.text.token_names(self.encoder(model))
        zoo.word2vec.write_vectors(run.stage / "vectors.txt", names, model.word_vectors())

    def figures(self, run, model):
        super().figures(run, model)
        neighbours = zoo.text.nearest_words(self.encoder(model), model.word_vectors(), PROBE_WORDS, k=6)
        figures.text_table(
            [(w, ", ".join(f"{n} ({s:.2f})" for n, s in found)) for w, found in neighbours.items()],
            run.fig_dir + "/neighbours.png",
            "nearest words by cosine similarity of the word vectors",
            columns=("word", "nearest words (cosine similarity)"),
        )


RECIPE = Word2vec()


def run(config: Config) -> dict:
    """Run the whole word2vec recipe for `config`; returns metrics.json's content."""
    return flow.run(RECIPE, config)


if __name__ == "__main__":
    flow.cli(run, Config)
