"""The corpus benchmarks/search_speed.py searches: bags of real words by topic, embedded with the local model, and
its load into a collection.

Each document takes one real text as its topic (an nfcorpus abstract or a SQuAD paragraph, drawn at random) and
each of its chunks draws its words from that text's words (by their frequency in it) or, at a fixed rate, from the
unigram distribution of all the texts together: real English and medical vocabulary with its real Zipf curve, so
to_tsvector has real stemming and stop words to deal with, and chunks of one topic share words as chunks of one
document do. The vectors are all-MiniLM-L6-v2's (app/embeddings/local.py) of each chunk's text, so they cluster by
topic as embeddings of real text do, which uniform random vectors do not. Queries of 3-8 words are drawn the same
way from the topic of a document of the corpus. docs/benchmarks.md says why this corpus and not another.

Questions (Generator.questions) are SQuAD's questions of 8-20 words with their topical words swapped for the
corpus's: each question takes the shape of a SQuAD question drawn at random among those of a length drawn evenly
from 8 to 20, keeps its frame words (those used in the questions of at least two thirds of SQuAD's articles:
"what", "the", "of", "did", "how", "many", "type", "used", ...), and each of its other words becomes, one time in
four, one of QUESTION_TERMS (the words questions in this field carry: "effect", "role", "studies", "risk" ...) and
otherwise a word of the topic of a random document of the corpus, drawn as keyword queries draw theirs. So a
question has the length and the stop words of a real question, several words common in the corpus, and a handful
of rarer ones on one topic (7 lexemes in 14 words on average, against 5.5 in the keyword queries' 5.6 words).

Beyond the chunks embedded by the model (100,000 by default), spread() gives each further chunk the vector of a
chunk of an embedded document on the same topic, plus Gaussian noise, renormalised: 1M chunks of real text without
hours of embedding.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.types.json import Jsonb
from write_variants import CHUNK_COLUMNS, CHUNK_TYPES, EMBEDDING_COLUMNS, MODEL, reserve_ids

from app.db.models import SCHEMA, version_table
from app.embeddings.local import BUNDLED_MODEL_SHA256, LocalEmbedder

CACHE_DIR = Path(__file__).resolve().parent / ".cache"
# Bumped when the generator changes, so that cached vectors of other texts are not reused.
GENERATOR_VERSION = 1
_WORD = re.compile(r"[a-z][a-z'-]*[a-z]|[a-z]")
# Artefacts of the nfcorpus scrape (numbers replaced by "num", every abstract's boilerplate), not words.
_ARTEFACTS = {"num", "abstract", "pubmed", "ncbi"}
# Words that questions about nutrition and medicine carry whatever their subject (NFCorpus's queries are of this
# kind), mixed into the questions' content words.
QUESTION_TERMS = (
    "effect", "effects", "role", "studies", "study", "risk", "associated", "evidence", "cause", "levels",
    "increase", "reduce", "patients", "treatment", "compared", "health", "disease", "diet",
)  # fmt: skip


@dataclass(frozen=True)
class Corpus:
    """Documents of chunks (texts only) and the topic each document was drawn from."""

    documents: list[list[str]]  # chunk texts per document
    topics: list[int]  # index of the source text per document
    vocabulary: int  # distinct words in the source texts

    @property
    def chunks(self) -> list[str]:
        return [text for chunks in self.documents for text in chunks]


def read_sources(nfcorpus: Path, squad: Path | None) -> list[list[str]]:
    """The words of every source text: nfcorpus title + abstract, SQuAD paragraphs."""
    texts = []
    with nfcorpus.open() as lines:
        for line in lines:
            row = json.loads(line)
            texts.append(f"{row.get('title', '')} {row['text']}")
    if squad is not None and squad.is_file():
        for article in json.loads(squad.read_text())["data"]:
            texts.extend(paragraph["context"] for paragraph in article["paragraphs"])
    sources = [[w for w in _WORD.findall(text.lower()) if w not in _ARTEFACTS] for text in texts]
    return [words for words in sources if len(words) >= 10]


@dataclass(frozen=True)
class QuestionShapes:
    """SQuAD questions as word lists, and the words that frame questions rather than name their subject."""

    shapes: list[list[str]]
    frame: frozenset[str]


def read_question_shapes(squad: Path, shortest: int = 8, longest: int = 20) -> QuestionShapes:
    """The questions of SQUAD of SHORTEST-LONGEST words; a word is a frame word when the questions of at least two
    thirds of the articles use it (97 words in SQuAD dev, 24 of 35 articles: "what", "the", "many", "year", "type",
    "used", "called"; "steam" or "warsaw" belong to one article)."""
    articles = json.loads(squad.read_text())["data"]
    shapes, used_in = [], Counter[str]()
    for article in articles:
        seen: set[str] = set()
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                words = _WORD.findall(qa["question"].lower())
                seen.update(words)
                if shortest <= len(words) <= longest:
                    shapes.append(words)
        used_in.update(seen)
    frame = frozenset(word for word, count in used_in.items() if 3 * count >= 2 * len(articles))
    return QuestionShapes(shapes, frame)


class Generator:
    """Draws chunk and query texts from the source texts: a topic's words, mixed with the whole corpus's."""

    def __init__(self, sources: list[list[str]], seed: int, topic_share: float = 0.6) -> None:
        counts = Counter(word for words in sources for word in words)
        self.words = np.array(sorted(counts), dtype=object)
        index = {word: i for i, word in enumerate(self.words)}
        self.sources = [np.array([index[w] for w in words]) for words in sources]
        frequency = np.array([counts[w] for w in self.words], dtype=np.float64)
        self.unigram = frequency / frequency.sum()
        self.topic_share = topic_share
        self.rng = np.random.default_rng(seed)

    def draw(self, topic: int, count: int, topic_share: float | None = None) -> np.ndarray:
        share = self.topic_share if topic_share is None else topic_share
        from_topic = self.rng.random(count) < share
        picks = self.rng.choice(len(self.words), size=count, p=self.unigram)
        source = self.sources[topic]
        picks[from_topic] = source[self.rng.integers(0, len(source), size=int(from_topic.sum()))]
        return picks

    def corpus(self, rows: int, per_document: int, words: int) -> Corpus:
        documents, topics = [], []
        for start in range(0, rows, per_document):
            topic = int(self.rng.integers(0, len(self.sources)))
            count = min(per_document, rows - start)
            picks = self.draw(topic, count * words).reshape(count, words)
            documents.append([" ".join(self.words[row]) for row in picks])
            topics.append(topic)
        return Corpus(documents, topics, len(self.words))

    def queries(self, corpus: Corpus, count: int, shortest: int = 3, longest: int = 8) -> list[str]:
        """COUNT queries of SHORTEST-LONGEST distinct words, each on the topic of a random document of CORPUS."""
        queries = []
        for _ in range(count):
            topic = corpus.topics[int(self.rng.integers(0, len(corpus.topics)))]
            length = int(self.rng.integers(shortest, longest + 1))
            words: list[str] = []
            while len(words) < length:
                word = str(self.words[self.draw(topic, 1, topic_share=0.7)[0]])
                if word not in words:
                    words.append(word)
            queries.append(" ".join(words))
        return queries

    def questions(
        self, corpus: Corpus, count: int, shapes: QuestionShapes, shortest: int = 8, longest: int = 20,
        term_share: float = 0.25,
    ) -> list[str]:  # fmt: skip
        """COUNT questions of SHORTEST-LONGEST words (as many of each length), each in the shape of a random SQuAD
        question of that length, on the topic of a random document of CORPUS (the module's docstring says how)."""
        questions = []
        for _ in range(count):
            # A length drawn evenly first: SQuAD's questions are mostly short (751 of 8 words, 38 of 20).
            length = int(self.rng.integers(shortest, longest + 1))
            of_length = [shape for shape in shapes.shapes if len(shape) == length]
            shape = of_length[int(self.rng.integers(0, len(of_length)))]
            topic = corpus.topics[int(self.rng.integers(0, len(corpus.topics)))]
            words: list[str] = []
            for word in shape:
                if word in shapes.frame:
                    words.append(word)
                    continue
                while True:
                    if self.rng.random() < term_share:
                        chosen = QUESTION_TERMS[int(self.rng.integers(0, len(QUESTION_TERMS)))]
                    else:
                        chosen = str(self.words[self.draw(topic, 1, topic_share=0.7)[0]])
                    if chosen not in words:
                        break
                words.append(chosen)
            questions.append(" ".join(words) + "?")
        return questions


@dataclass(frozen=True)
class QuerySets:
    """What search_speed.py times: keyword queries, passages (chunks drawn like the corpus's, not loaded) and
    questions, in the order they are drawn."""

    keywords: list[str]
    passages: list[str]
    questions: list[str]


def draw_queries(generator: Generator, corpus: Corpus, count: int, words: int, squad: Path) -> QuerySets:
    """COUNT queries of each set on the topics of CORPUS, drawn by GENERATOR right after the corpus."""
    keywords = generator.queries(corpus, count)
    passages = generator.corpus(count, 1, words).chunks
    # Drawn last, so that the corpus, keyword queries and passages are those of the runs before them.
    questions = generator.questions(corpus, count, read_question_shapes(squad))
    return QuerySets(keywords, passages, questions)


def _cache_path(texts: list[str], label: str) -> Path:
    digest = hashlib.sha256(f"{GENERATOR_VERSION}\n{BUNDLED_MODEL_SHA256}\n".encode())
    for text in texts:
        digest.update(text.encode())
        digest.update(b"\0")
    return CACHE_DIR / f"{label}-{len(texts)}-{digest.hexdigest()[:16]}.npy"


def cached(texts: list[str], label: str) -> np.ndarray | None:
    """The vectors of TEXTS if benchmarks/.cache has them, else None."""
    path = _cache_path(texts, label)
    return np.load(path) if path.is_file() else None


def embed_cached(
    texts: list[str], label: str, on_progress: Callable[[int], Any] | None = None, batch: int = 512
) -> tuple[np.ndarray, bool]:
    """The local model's vectors of TEXTS, from benchmarks/.cache when computed before (keyed by the texts and the
    model file). Returns (vectors, whether they came from the cache). Partial work is kept, so an interrupted run
    resumes where it stopped."""
    path = _cache_path(texts, label)
    if path.is_file():
        vectors = np.load(path)
        if on_progress:
            on_progress(len(texts))
        return vectors, True
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npy")
    done_path = path.with_suffix(".partial.json")
    vectors = np.zeros((len(texts), 384), dtype=np.float32)
    done = 0
    if partial.is_file() and done_path.is_file():
        vectors = np.load(partial)
        done = json.loads(done_path.read_text())["done"]
    if on_progress:
        on_progress(done)
    embedder = LocalEmbedder()
    for start in range(done, len(texts), batch):
        end = min(start + batch, len(texts))
        vectors[start:end] = embedder.embed(texts[start:end])
        if on_progress:
            on_progress(end - start)
        if (end // batch) % 20 == 0 or end == len(texts):
            np.save(partial, vectors)
            done_path.write_text(json.dumps({"done": end}))
    np.save(path, vectors)
    partial.unlink(missing_ok=True)
    done_path.unlink(missing_ok=True)
    return vectors, False


def spread(
    embedded: np.ndarray, corpus: Corpus, sigma: float, seed: int, on_progress: Callable[[int], Any] | None = None
) -> np.ndarray:
    """Vectors for every chunk of CORPUS, whose first len(EMBEDDED) chunks have the model's vectors EMBEDDED: each
    later document takes an embedded document on the same topic (any embedded document when its topic has none)
    and each of its chunks that document's chunk of the same ordinal (cycling), plus Gaussian noise of SIGMA per
    dimension, renormalised."""
    rng = np.random.default_rng(seed)
    vectors = np.empty((sum(len(chunks) for chunks in corpus.documents), embedded.shape[1]), dtype=np.float32)
    vectors[: len(embedded)] = embedded
    starts = np.cumsum([0] + [len(chunks) for chunks in corpus.documents])
    done = int(np.searchsorted(starts, len(embedded)))
    assert starts[done] == len(embedded), "the embedded chunks must be whole documents"
    by_topic: dict[int, list[int]] = {}
    for number in range(done):
        by_topic.setdefault(corpus.topics[number], []).append(number)
    for number in range(done, len(corpus.documents)):
        same = by_topic.get(corpus.topics[number])
        source = int(rng.choice(same)) if same else int(rng.integers(0, done))
        size = int(starts[source + 1] - starts[source])
        rows = starts[source] + np.arange(starts[number + 1] - starts[number]) % size
        block = embedded[rows] + rng.normal(0, sigma, (len(rows), embedded.shape[1])).astype(np.float32)
        vectors[starts[number] : starts[number + 1]] = block / np.linalg.norm(block, axis=1, keepdims=True)
        if on_progress:
            on_progress(len(rows))
    return vectors


def load(
    url: str, corpus: Corpus, vectors: np.ndarray, name: str, buckets: int, bar: Any,
    maintenance_work_mem: str | None = None, storage: str = "vector", model: str = MODEL,
) -> tuple[int, dict[str, float]]:  # fmt: skip
    """Documents, chunks and vectors of CORPUS into a new collection NAME (of MODEL, its index of STORAGE type),
    documents with metadata {"bucket": n % BUCKETS}: the chunks' GIN index and the HNSW index dropped during the COPY
    and built after it (with MAINTENANCE_WORK_MEM if given), then VACUUM ANALYZE. The BM25 statistics are kept by
    their triggers during the COPY. Returns (collection id, seconds per step)."""
    seconds: dict[str, float] = {}
    rows = sum(len(chunks) for chunks in corpus.documents)
    with psycopg.connect(url, autocommit=True) as conn:
        register_vector(conn)
        if maintenance_work_mem:
            conn.execute("SELECT set_config('maintenance_work_mem', %s, false)", (maintenance_work_mem,))
        # One sorted build instead of an insertion per chunk and lexeme; the same index afterwards.
        gin = sql.Identifier(SCHEMA, "ix_chunk_tsv")
        gin_definition = conn.execute("SELECT pg_get_indexdef(%s::regclass)", (f"{SCHEMA}.ix_chunk_tsv",)).fetchone()[0]  # type: ignore[index]
        conn.execute(sql.SQL("DROP INDEX {}").format(gin))
        collection_id, language_oid = conn.execute(
            "INSERT INTO memora.collection (name, embedding_provider, embedding_model, dimensions, storage) "
            "VALUES (%s, 'local', %s, %s, %s) RETURNING id, language::oid",
            (name, model, vectors.shape[1], storage),
        ).fetchone()  # type: ignore[misc]
        hnsw = sql.Identifier(SCHEMA, f"{version_table(collection_id, 1)}_hnsw")
        conn.execute(sql.SQL("DROP INDEX {}").format(hnsw))
        cursor = conn.cursor()
        start = time.perf_counter()
        with conn.transaction():
            task = bar.add_task("COPY documents", total=len(corpus.documents))
            with cursor.copy(
                "COPY memora.document (collection_id, id, external_id, title, content, status, metadata) FROM STDIN"
            ) as copy:
                for number, chunks in enumerate(corpus.documents, start=1):
                    meta = Jsonb({"bucket": number % buckets})
                    copy.write_row((collection_id, number, f"doc-{number}", "", "\n\n".join(chunks), "ready", meta))
                    bar.advance(task)
            bar.remove_task(task)
            ids = reserve_ids(cursor, rows)
            task = bar.add_task("COPY chunks", total=rows)
            statement = sql.SQL("COPY memora.chunk ({}) FROM STDIN (FORMAT BINARY)").format(
                sql.SQL(", ").join(map(sql.Identifier, CHUNK_COLUMNS))
            )
            with cursor.copy(statement) as copy:
                copy.set_types(CHUNK_TYPES)
                row = 0
                for number, chunks in enumerate(corpus.documents, start=1):
                    offset = 0
                    for ordinal, text in enumerate(chunks):
                        digest = hashlib.sha256(text.encode()).digest()
                        copy.write_row(
                            (collection_id, ids[row], number, ordinal, text, offset, offset + len(text),
                             len(text.split()), digest, "", language_oid, Jsonb({}))
                        )  # fmt: skip
                        offset += len(text) + 2
                        row += 1
                    bar.advance(task, len(chunks))
            bar.remove_task(task)
            seconds["COPY documents and chunks"] = time.perf_counter() - start
            start = time.perf_counter()
            task = bar.add_task("COPY vectors", total=rows)
            statement = sql.SQL("COPY memora.embedding ({}) FROM STDIN (FORMAT BINARY)").format(
                sql.SQL(", ").join(map(sql.Identifier, EMBEDDING_COLUMNS))
            )
            with cursor.copy(statement) as copy:
                copy.set_types(["int8", "int8", "text", "vector"])
                for row, (chunk_id, vector) in enumerate(zip(ids, vectors, strict=True), start=1):
                    copy.write_row((collection_id, chunk_id, model, vector))
                    if row % 1000 == 0:
                        bar.advance(task, 1000)
            bar.remove_task(task)
            seconds["COPY vectors"] = time.perf_counter() - start
        task = bar.add_task("building the chunks' GIN index", total=None)
        start = time.perf_counter()
        conn.execute(gin_definition)
        seconds["GIN index build"] = time.perf_counter() - start
        bar.remove_task(task)
        task = bar.add_task("building the HNSW index", total=None)
        start = time.perf_counter()
        conn.execute("SELECT memora.create_collection_index(%s)", (collection_id,))
        seconds["HNSW index build"] = time.perf_counter() - start
        bar.remove_task(task)
        task = bar.add_task("VACUUM ANALYZE", total=None)
        start = time.perf_counter()
        conn.execute(
            "VACUUM ANALYZE memora.document, memora.chunk, memora.posting, memora.embedding, memora.term_stats"
        )
        seconds["VACUUM ANALYZE"] = time.perf_counter() - start
        bar.remove_task(task)
        count = conn.execute(
            "SELECT count(*) FROM memora.embedding WHERE collection_id = %s", (collection_id,)
        ).fetchone()[0]  # type: ignore[index]
    assert count == rows, (count, rows)
    return collection_id, seconds
