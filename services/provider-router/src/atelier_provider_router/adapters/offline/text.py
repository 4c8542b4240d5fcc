"""A deterministic children's storyteller: the prompt's words become the hero, the place and the things.

The story follows a fixed arc (opening, discovery, journey, trouble, ending); each paragraph takes
a lead sentence and a few ordered optional beats, and every ``{slot}`` not fixed for the whole story
is filled per sentence from a small vocabulary, so two prompts rarely share a paragraph.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import string
from collections.abc import Iterable
from dataclasses import dataclass

MODEL = "offline-storyteller-1"


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _places(table: str) -> dict[str, str]:
    pairs = (item.split(":", 1) for item in table.split(";") if item.strip())
    return {word.strip(): where.strip() for word, where in pairs}


CREATURES = _words(
    "fox rabbit bunny bear owl cat kitten dog puppy mouse dragon unicorn robot girl boy princess prince "
    "knight wizard witch giant elephant lion tiger turtle whale dolphin penguin frog duck hedgehog "
    "squirrel badger otter bee butterfly ladybug snail horse pony monkey giraffe zebra panda koala "
    "octopus fish bird goose hen pig sheep goat deer wolf bat dinosaur alien fairy pirate astronaut "
    "mermaid troll goblin ghost snowman crab seal beaver raccoon mole lamb chick"
)
TRAITS = _words(
    "brave shy curious tiny little clever kind sleepy grumpy gentle bold cheerful lonely silly wise "
    "young playful careful clumsy quiet noisy happy timid fearless small hungry friendly proud "
    "adventurous dreamy"
)
OBJECTS = _words(
    "lantern map key balloon boat book star kite egg shell feather crown compass umbrella hat scarf "
    "drum flute violin bell seed flower acorn cake cookie pie apple treasure box jar ribbon rocket "
    "sock mitten pebble stone crystal wand clock letter telescope ball blanket button marble bicycle "
    "sled carrot honey snowflake rainbow cloud leaf basket bottle pearl ring door bridge train ship "
    "wagon candle mirror paintbrush whistle teapot cup song sandcastle"
)
# Where a place word puts the hero, with its preposition: "on the moon", "in the forest".
PLACES = _places(
    "moon: on the moon; forest: in the forest; woods: in the woods; sea: by the sea; "
    "ocean: by the ocean; beach: by the beach; castle: in the castle; mountain: high in the mountains; "
    "garden: in the garden; city: in the city; village: in the village; island: on the island; "
    "desert: in the desert; river: by the river; lake: by the lake; cave: deep in the caves; "
    "sky: high in the sky; space: far out in outer space; jungle: in the jungle; meadow: in the meadow; "
    "farm: on the farm; library: in the library; school: near the school; kingdom: in the kingdom; "
    "valley: in the valley; pond: by the pond; swamp: in the swamp; arctic: in the frozen Arctic; "
    "town: in the town; lighthouse: by the lighthouse; harbor: by the harbor; orchard: in the orchard; "
    "park: in the park; planet: on a faraway planet; cloud: up in the clouds; attic: in the attic; "
    "zoo: at the zoo;"
)
DEFAULT_PLACES = [
    "in a quiet valley",
    "in the Whispering Woods",
    "in a little seaside town",
    "in a village beneath tall hills",
    "in a meadow full of clover",
]
NAMES = sorted(
    _words("Pip Juniper Milo Tilly Bram Hazel Otto Wren Poppy Finn Mabel Rufus Luna Basil Clementine Ziggy")
)
STOPWORDS = _words(
    "a an the and or but of to in on at by for with about into from over under who whom whose that "
    "this these those is are was were be been it its his her their they them he she we you i me my "
    "our your story tale kids children child bedtime write tell named called some very one two "
    "find want learn make help explore meet look see try save lose love go get has have had all "
    # Common adjectives and verbs that would otherwise read as things ("a glowing purple").
    "red blue green yellow orange purple pink black white big tall magic magical secret new old "
    "first last best great good bad dark bright day night time way out up down where when how why "
    "what not just also only then than into after before again never always home"
)

VOCAB: dict[str, list[str]] = {
    "walk": ["wandered", "tiptoed", "scampered", "strolled", "hurried", "skipped"],
    "said": ["said", "whispered", "called", "laughed", "murmured"],
    "big": ["enormous", "huge", "towering", "gigantic", "very big"],
    "soft": ["soft", "gentle", "hushed", "quiet"],
    "softly": ["softly", "gently", "quietly", "warmly"],
    "look": ["peered", "gazed", "looked", "peeked"],
    "shine": ["glowed", "sparkled", "shimmered", "twinkled", "glittered"],
    "shine_now": ["glow", "sparkle", "shimmer", "twinkle", "glitter"],
    "sound": ["a tinkling sound", "a soft humming", "a gentle whoosh", "a faraway jingle", "a tiny chime"],
    "color": ["pink", "golden", "lavender", "sea-green", "peach-colored", "silver-blue"],
    "tod": ["morning", "afternoon", "evening", "breezy day", "rainy morning", "starry night"],
    "hobby": [
        "count the clouds",
        "collect shiny pebbles",
        "hum made-up songs",
        "draw maps of secret places",
        "listen to old stories",
    ],
    "landmark": [
        "a bubbling brook",
        "a crooked old fence",
        "a field of sleepy sunflowers",
        "a bridge made of roots",
        "a hill shaped like a teacup",
        "a row of whispering reeds",
    ],
    "snack": ["blueberry muffins", "crunchy apples", "honey biscuits", "warm toast", "sweet pears"],
    "obstacle": [
        "a wide, rushing river",
        "a wall of prickly brambles",
        "a deep, dark hole",
        "a steep and slippery hill",
        "a tangle of thorny vines",
    ],
    "smell": ["fresh rain", "warm bread", "pine needles", "wild strawberries", "salt and seaweed"],
    "critter": ["a snail", "an old tortoise", "a family of ducks", "a sleepy badger", "a chatty magpie"],
    "activity": [
        "knitting a scarf",
        "singing to the daisies",
        "reading a very long book",
        "building a tower of pebbles",
        "painting the clouds",
    ],
}


@dataclass(frozen=True)
class Stage:
    lead: list[str]
    beats: list[str]


STAGES: dict[str, Stage] = {
    "opening": Stage(
        lead=[
            "Once upon a time, {at_place}, there lived a {trait} {kind} named {name}.",
            "{at_place}, where the {color} light was always {soft}, lived a {trait} {kind} called {name}.",
            "There was once a {trait} {kind} named {name} who lived {at_place}.",
        ],
        beats=[
            "Every morning, {name} {walk} outside to say hello to the {color} sky.",
            "{name} had a {soft} voice, a {big} heart, and a head full of questions.",
            "More than anything, {name} loved to {hobby}.",
            "Everyone {at_place} knew {name}, because {name} always waved hello.",
            "Some days were slow and {soft}, and {name} did not mind one bit.",
            "But deep down, {name} wished for a real adventure.",
        ],
    ),
    "discovery": Stage(
        lead=[
            "One {tod}, {name} found {a_thing} lying all alone.",
            "One {tod}, something unusual happened: {a_thing} appeared right outside {name}'s door.",
            "It all began one {tod}, when {name} nearly tripped over {a_thing}.",
        ],
        beats=[
            "It {shine} in the light, and it made {sound} when {name} touched it.",
            '{name} {look} at it closely and asked, "What could this be?"',
            "{name} turned the {thing} over and over, looking for clues.",
            "The {thing} seemed to tug {softly}, as if it wanted to go somewhere.",
            "{name} felt a tingle of excitement from nose to toes.",
            "There was only one thing to do: find out where the {thing} had come from.",
        ],
    ),
    "journey": Stage(
        lead=[
            "So {name} set off with the {thing} and soon met {a_friend} named {fname}.",
            "Along the way, {name} bumped into {fname}, {a_friend} with {big} eyes.",
        ],
        beats=[
            "{fname} asked where they were going, and {name} explained all about the {thing}.",
            "{fname} had never seen anything quite like the {thing}.",
            "{fname} decided to come along, because adventures are better with a friend.",
            "Together they {walk} past {landmark} and over the hills.",
            "They shared a snack of {snack} and told each other silly jokes.",
            "Every so often, the {thing} {shine}, as if to say they were going the right way.",
        ],
    ),
    "wonder": Stage(
        lead=[
            "The journey went on, and the world grew stranger and more wonderful.",
            "The next {tod}, {name} and {fname} {walk} on.",
            "Over the next hill, everything looked a little different.",
            "By the time the {color} clouds rolled in, they had {walk} a very long way.",
        ],
        beats=[
            "They passed {landmark}, where {critter} was {activity}.",
            "A {color} butterfly landed on the {thing}, then fluttered off again.",
            "{name} hummed a {soft} tune, and {fname} joined in on the chorus.",
            "They met {critter} who pointed the way and wished them luck.",
            "Puddles shone like mirrors, and they hopped over every single one.",
            "{fname} found a {color} feather and tucked it behind one ear.",
            "The air smelled of {smell}, and somewhere a bird was practicing a new song.",
            "{fname} told a story about the time it rained {color} raindrops.",
            "{name} {look} at the {thing} and noticed it was a little warmer than before.",
            "For a long while nobody said anything, and that felt just right.",
            "When they grew tired, they rested under a tree and counted the leaves.",
        ],
    ),
    "trouble": Stage(
        lead=[
            "Then, just as the sky grew dark, they came to {obstacle}.",
            "Suddenly, a {big} gust of wind swept the {thing} away toward {obstacle}.",
        ],
        beats=[
            "{name} felt a little scared, and {fname} did too.",
            '"We can\'t give up now," {name} {said}, taking a deep breath.',
            "{fname} had an idea and pulled out {a_thing2}, which was just what they needed.",
            "They worked together, step by careful step.",
            "Being brave does not mean never being afraid; it means trying anyway.",
            "At last, with one final push, they made it to the other side.",
        ],
    ),
    "ending": Stage(
        lead=[
            "At the end of the path, they discovered where the {thing} belonged.",
            "Finally, they reached a {soft} clearing where the {thing} began to {shine_now}.",
        ],
        beats=[
            "It was a place full of {color} lights and {soft} music.",
            "Everyone {at_place} cheered when they heard the whole story.",
            "{name} and {fname} promised to be friends forever.",
            "{name} learned that the best adventures begin with a little curiosity and a good friend.",
            "That night, {name} fell asleep smiling, with the {thing} glowing {softly} nearby.",
            "And sometimes, when the wind is just right, you can still hear {sound} {at_place}.",
        ],
    ),
}
_KNOWN_NOUNS = CREATURES | OBJECTS | PLACES.keys()
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
_FORMATTER = string.Formatter()


def write_story(prompt: str, title: str, seed: int = 0, paragraphs: int = 5) -> str:
    """Write a Markdown story (``# title`` then ``paragraphs`` paragraphs) from the prompt.

    The same ``(prompt, title, seed, paragraphs)`` always gives byte-identical text.
    """
    if not 1 <= paragraphs <= 50:
        raise ValueError(f"paragraphs must be between 1 and 50, got {paragraphs}")
    key = json.dumps([prompt, title, seed], ensure_ascii=False).encode()
    rng = random.Random(int.from_bytes(hashlib.sha256(key).digest()[:8], "big"))
    cast = _cast(prompt, rng)
    heading = " ".join(title.split()) or "A Story"
    used: set[str] = set()
    body = [_paragraph(STAGES[stage], cast, rng, used) for stage in _plan(paragraphs)]
    return f"# {heading}\n\n" + "\n\n".join(body) + "\n"


_SCENE_TIMES = (
    "at dawn", "at dusk", "in the rain", "under the stars", "in the snow", "on a windy morning",
    "by moonlight", "in a summer storm", "in the fog", "at midday",
)  # fmt: skip


def write_list(prompt: str, seed: int = 0, items: int = 6) -> str:
    """``items`` distinct lines (scene ideas told by the story's beats), one per line: the same
    ``(prompt, seed, items)`` always gives the same list."""
    if not 1 <= items <= 500:
        raise ValueError(f"items must be between 1 and 500, got {items}")
    key = json.dumps(["list", prompt, seed], ensure_ascii=False).encode()
    rng = random.Random(int.from_bytes(hashlib.sha256(key).digest()[:8], "big"))
    cast = _cast(prompt, rng)
    lines: list[str] = []
    seen: set[str] = set()
    round_ = 0
    while len(lines) < items:
        round_ += 1
        for stage in _plan(5):
            for template in STAGES[stage].beats:
                line = _fill(template, cast, rng)
                if round_ > 1:  # every beat told once: the same scene, seen again another way
                    line = f"{line.rstrip('.!')}, {rng.choice(_SCENE_TIMES)}."
                if line not in seen:
                    seen.add(line)
                    lines.append(line)
                if len(lines) == items:
                    break
            if len(lines) == items:
                break
        if round_ > 50:
            lines += [f"{prompt} ({i})" for i in range(len(lines) + 1, items + 1)]
    return "\n".join(lines) + "\n"


def _plan(paragraphs: int) -> list[str]:
    """The arc shrinks from the middle and grows by wandering, so it always opens and ends well."""
    arcs = {1: ["opening"], 2: ["opening", "ending"], 3: ["opening", "discovery", "ending"]}
    if paragraphs in arcs:
        return arcs[paragraphs]
    middle = ["journey", *["wonder"] * (paragraphs - 5), "trouble"] if paragraphs > 4 else ["trouble"]
    return ["opening", "discovery", *middle, "ending"]


def _paragraph(stage: Stage, cast: dict[str, str], rng: random.Random, used: set[str]) -> str:
    count = rng.randint(3, 6)
    # Long stories revisit a stage; prefer beats not told yet, and only repeat once all are used.
    fresh = [b for b in stage.beats if b not in used]
    pool = fresh if len(fresh) >= count - 1 else stage.beats
    leads = [t for t in stage.lead if t not in used] or stage.lead
    # Keep the beats in their written order: they are a small story of their own.
    picks = sorted(rng.sample(range(len(pool)), count - 1))
    templates = [rng.choice(leads), *(pool[i] for i in picks)]
    used.update(templates)
    return " ".join(_fill(t, cast, rng) for t in templates)


def _fill(template: str, cast: dict[str, str], rng: random.Random) -> str:
    slots = {name for _, name, _, _ in _FORMATTER.parse(template) if name}
    values = {name: cast[name] if name in cast else rng.choice(VOCAB[name]) for name in sorted(slots)}
    sentence = template.format(**values)
    start = 1 if sentence.startswith('"') else 0
    return sentence[:start] + sentence[start].upper() + sentence[start + 1 :]


def _cast(prompt: str, rng: random.Random) -> dict[str, str]:
    """Pick hero, friend, place and things from the prompt's words, filling gaps from the RNG."""
    tokens = _WORD.findall(prompt)
    names = _proper_names(tokens)
    words = [_singular(w.lower()) for w in tokens]
    creatures = _unique(w for w in words if w in CREATURES)
    things = _unique(w for w in words if w in OBJECTS and w not in PLACES)
    lowered_names = {n.lower() for n in names}
    things += _unique(w for w in words if _nouny(w) and w not in things and w not in lowered_names)
    places = _unique(w for w in words if w in PLACES)
    traits = _unique(w for w in words if w in TRAITS)

    kind = creatures[0] if creatures else rng.choice(["fox", "rabbit", "hedgehog", "owl", "mouse"])
    fkind = creatures[1] if len(creatures) > 1 else rng.choice(["turtle", "squirrel", "duck", "otter"])
    name = names[0] if names else rng.choice(NAMES)
    fname = rng.choice([n for n in (names[1:] or NAMES) if n != name])
    at_place = PLACES[places[0]] if places else rng.choice(DEFAULT_PLACES)
    defaults = [t for t in ("pebble", "feather", "lantern", "key", "map", "shell") if t not in things]
    rng.shuffle(defaults)
    thing, thing2 = [*things, *defaults][:2]
    looks = ["glowing", "tiny", "silver", "golden", "old", "shimmering", "rainbow-striped", "humming"]
    return {
        "name": name,
        "kind": kind,
        "trait": traits[0] if traits else rng.choice(sorted(TRAITS)),
        "at_place": at_place,
        "thing": thing,
        "a_thing": _article(f"{rng.choice(looks)} {thing}"),
        "thing2": thing2,
        "a_thing2": _article(f"{rng.choice(looks)} {thing2}"),
        "fname": fname,
        "a_friend": _article(f"{rng.choice(['shy', 'cheerful', 'wise', 'friendly', 'clever'])} {fkind}"),
    }


def _singular(word: str) -> str:
    for suffix in ("es", "s"):
        stem = word.removesuffix(suffix)
        if word.endswith(suffix) and stem in _KNOWN_NOUNS:
            return stem
    return word


def _nouny(word: str) -> bool:
    """Unknown words that are probably nouns; verbs and adverbs would read oddly as 'the {thing}'."""
    if len(word) < 3 or word in STOPWORDS or word in TRAITS or word in CREATURES or word in PLACES:
        return False
    return not word.endswith(("ly", "ing", "ed", "s")) or word.endswith(("ss", "us"))


def _proper_names(tokens: list[str]) -> list[str]:
    """Capitalised words mid-prompt are names, unless the whole prompt is written in Title Case."""
    capitalised = [t for t in tokens[1:] if t[0].isupper() and t.lower() not in STOPWORDS]
    if len(capitalised) * 2 > len(tokens):
        return []
    known = CREATURES | OBJECTS | TRAITS | PLACES.keys()
    return _unique(t for t in capitalised if t.lower() not in known and t.isalpha())


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


_BEAT = re.compile(r"[^.!?\n]+(?:[.!?]+[\"\u201d\u2019']?|$)")
_QUOTED = re.compile(r"[\"“]([^\"”]+)[\"”]")
_MOVES = ("zoom_in", "pan_right", "zoom_out", "pan_left", "pan_up", "static", "pan_down")
_FRAMINGS = ("wide shot of", "close-up of", "medium shot of", "over-the-shoulder view of", "low angle on")


def write_shots(script: str, seed: int = 0) -> str:
    """A script as a shot list, JSON ``{"shots": [...]}``: one shot per sentence (a beat), its
    dialogue when it quotes someone (else the sentence as narration), a duration from how long
    the line takes to say, a camera move and a framing that vary from shot to shot. The same
    ``(script, seed)`` always gives the same list."""
    beats = [b.strip() for b in _BEAT.findall(script) if b.strip(" .!?\"'")]
    if not beats:
        raise ValueError("the script has no sentence to film")
    rng = random.Random(
        int.from_bytes(hashlib.sha256(json.dumps([script, seed]).encode()).digest()[:8], "big")
    )
    offset = rng.randrange(len(_MOVES))
    shots = []
    setting = ""
    for i, beat in enumerate(beats[:48]):
        quoted = _QUOTED.search(beat)
        line = quoted[1].strip(" ,") if quoted else beat
        words = len(line.split())
        duration = min(max(round((1.2 + words * 0.38) * 2) / 2, 2.0), 8.0)  # half seconds, 2-8 s
        scene = _QUOTED.sub("", beat).strip(" ,.") or beat
        if quoted and setting:  # who speaks, where the narration last left us
            scene = f"{setting}, as {scene}"
        elif not quoted:
            setting = scene
        shots.append(
            {
                "description": f"{_FRAMINGS[(i + offset) % len(_FRAMINGS)]} {scene}",
                "duration_s": duration,
                "line": line,
                "move": _MOVES[(i + offset) % len(_MOVES)],
            }
        )
    return json.dumps({"shots": shots}, ensure_ascii=False)
