"""Prompt templates, class-name clean-ups and per-dataset settings of the Tip-Adapter paper, kept as data.

Each of the paper's 11 datasets has a frozen [`DatasetPreset`]: its templates, the class renames its runs used, the
initial `alpha`/`beta`, the search grid, the augmentation and training epochs, and the accuracies the paper reports
(16 shots, ResNet-50 CLIP). Select one by name with [`get_preset`] (`--template_set eurosat` on the command line).

ImageNet's 1000 class names are CLIP's cleaned list (OpenAI's `Prompt_Engineering_for_ImageNet` notebook, the list
the paper's code uses; open_clip's `zero_shot_metadata.py` carries it too), by label index. It names two pairs of
classes alike (`missile` at 657 and 744, `sunglasses` at 836 and 837); see [`unique_class_names`].
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

DEFAULT_TEMPLATES = ("a photo of a {}.",)

# The 7-template ensemble the paper uses on ImageNet (a subset of CLIP's 80 ImageNet prompts).
IMAGENET_TEMPLATES = (
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
)

# fmt: off
IMAGENET_CLASSNAMES = (
    "tench", "goldfish", "great white shark", "tiger shark", "hammerhead shark", "electric ray",
    "stingray", "rooster", "hen", "ostrich", "brambling", "goldfinch", "house finch", "junco",
    "indigo bunting", "American robin", "bulbul", "jay", "magpie", "chickadee", "American dipper",
    "kite (bird of prey)", "bald eagle", "vulture", "great grey owl", "fire salamander",
    "smooth newt", "newt", "spotted salamander", "axolotl", "American bullfrog", "tree frog",
    "tailed frog", "loggerhead sea turtle", "leatherback sea turtle", "mud turtle", "terrapin",
    "box turtle", "banded gecko", "green iguana", "Carolina anole",
    "desert grassland whiptail lizard", "agama", "frilled-necked lizard", "alligator lizard",
    "Gila monster", "European green lizard", "chameleon", "Komodo dragon", "Nile crocodile",
    "American alligator", "triceratops", "worm snake", "ring-necked snake",
    "eastern hog-nosed snake", "smooth green snake", "kingsnake", "garter snake", "water snake",
    "vine snake", "night snake", "boa constrictor", "African rock python", "Indian cobra",
    "green mamba", "sea snake", "Saharan horned viper", "eastern diamondback rattlesnake",
    "sidewinder rattlesnake", "trilobite", "harvestman", "scorpion", "yellow garden spider",
    "barn spider", "European garden spider", "southern black widow", "tarantula", "wolf spider",
    "tick", "centipede", "black grouse", "ptarmigan", "ruffed grouse", "prairie grouse", "peafowl",
    "quail", "partridge", "african grey parrot", "macaw", "sulphur-crested cockatoo", "lorikeet",
    "coucal", "bee eater", "hornbill", "hummingbird", "jacamar", "toucan", "duck",
    "red-breasted merganser", "goose", "black swan", "tusker", "echidna", "platypus", "wallaby",
    "koala", "wombat", "jellyfish", "sea anemone", "brain coral", "flatworm", "nematode", "conch",
    "snail", "slug", "sea slug", "chiton", "chambered nautilus", "Dungeness crab", "rock crab",
    "fiddler crab", "red king crab", "American lobster", "spiny lobster", "crayfish", "hermit crab",
    "isopod", "white stork", "black stork", "spoonbill", "flamingo", "little blue heron",
    "great egret", "bittern bird", "crane bird", "limpkin", "common gallinule", "American coot",
    "bustard", "ruddy turnstone", "dunlin", "common redshank", "dowitcher", "oystercatcher",
    "pelican", "king penguin", "albatross", "grey whale", "killer whale", "dugong", "sea lion",
    "Chihuahua", "Japanese Chin", "Maltese", "Pekingese", "Shih Tzu", "King Charles Spaniel",
    "Papillon", "toy terrier", "Rhodesian Ridgeback", "Afghan Hound", "Basset Hound", "Beagle",
    "Bloodhound", "Bluetick Coonhound", "Black and Tan Coonhound", "Treeing Walker Coonhound",
    "English foxhound", "Redbone Coonhound", "borzoi", "Irish Wolfhound", "Italian Greyhound",
    "Whippet", "Ibizan Hound", "Norwegian Elkhound", "Otterhound", "Saluki", "Scottish Deerhound",
    "Weimaraner", "Staffordshire Bull Terrier", "American Staffordshire Terrier",
    "Bedlington Terrier", "Border Terrier", "Kerry Blue Terrier", "Irish Terrier",
    "Norfolk Terrier", "Norwich Terrier", "Yorkshire Terrier", "Wire Fox Terrier",
    "Lakeland Terrier", "Sealyham Terrier", "Airedale Terrier", "Cairn Terrier",
    "Australian Terrier", "Dandie Dinmont Terrier", "Boston Terrier", "Miniature Schnauzer",
    "Giant Schnauzer", "Standard Schnauzer", "Scottish Terrier", "Tibetan Terrier",
    "Australian Silky Terrier", "Soft-coated Wheaten Terrier", "West Highland White Terrier",
    "Lhasa Apso", "Flat-Coated Retriever", "Curly-coated Retriever", "Golden Retriever",
    "Labrador Retriever", "Chesapeake Bay Retriever", "German Shorthaired Pointer", "Vizsla",
    "English Setter", "Irish Setter", "Gordon Setter", "Brittany dog", "Clumber Spaniel",
    "English Springer Spaniel", "Welsh Springer Spaniel", "Cocker Spaniel", "Sussex Spaniel",
    "Irish Water Spaniel", "Kuvasz", "Schipperke", "Groenendael dog", "Malinois", "Briard",
    "Australian Kelpie", "Komondor", "Old English Sheepdog", "Shetland Sheepdog", "collie",
    "Border Collie", "Bouvier des Flandres dog", "Rottweiler", "German Shepherd Dog", "Dobermann",
    "Miniature Pinscher", "Greater Swiss Mountain Dog", "Bernese Mountain Dog",
    "Appenzeller Sennenhund", "Entlebucher Sennenhund", "Boxer", "Bullmastiff", "Tibetan Mastiff",
    "French Bulldog", "Great Dane", "St. Bernard", "husky", "Alaskan Malamute", "Siberian Husky",
    "Dalmatian", "Affenpinscher", "Basenji", "pug", "Leonberger", "Newfoundland dog",
    "Great Pyrenees dog", "Samoyed", "Pomeranian", "Chow Chow", "Keeshond", "brussels griffon",
    "Pembroke Welsh Corgi", "Cardigan Welsh Corgi", "Toy Poodle", "Miniature Poodle",
    "Standard Poodle", "Mexican hairless dog (xoloitzcuintli)", "grey wolf", "Alaskan tundra wolf",
    "red wolf or maned wolf", "coyote", "dingo", "dhole", "African wild dog", "hyena", "red fox",
    "kit fox", "Arctic fox", "grey fox", "tabby cat", "tiger cat", "Persian cat", "Siamese cat",
    "Egyptian Mau", "cougar", "lynx", "leopard", "snow leopard", "jaguar", "lion", "tiger",
    "cheetah", "brown bear", "American black bear", "polar bear", "sloth bear", "mongoose",
    "meerkat", "tiger beetle", "ladybug", "ground beetle", "longhorn beetle", "leaf beetle",
    "dung beetle", "rhinoceros beetle", "weevil", "fly", "bee", "ant", "grasshopper",
    "cricket insect", "stick insect", "cockroach", "praying mantis", "cicada", "leafhopper",
    "lacewing", "dragonfly", "damselfly", "red admiral butterfly", "ringlet butterfly",
    "monarch butterfly", "small white butterfly", "sulphur butterfly", "gossamer-winged butterfly",
    "starfish", "sea urchin", "sea cucumber", "cottontail rabbit", "hare", "Angora rabbit",
    "hamster", "porcupine", "fox squirrel", "marmot", "beaver", "guinea pig", "common sorrel horse",
    "zebra", "pig", "wild boar", "warthog", "hippopotamus", "ox", "water buffalo", "bison",
    "ram (adult male sheep)", "bighorn sheep", "Alpine ibex", "hartebeest", "impala (antelope)",
    "gazelle", "arabian camel", "llama", "weasel", "mink", "European polecat",
    "black-footed ferret", "otter", "skunk", "badger", "armadillo", "three-toed sloth", "orangutan",
    "gorilla", "chimpanzee", "gibbon", "siamang", "guenon", "patas monkey", "baboon", "macaque",
    "langur", "black-and-white colobus", "proboscis monkey", "marmoset", "white-headed capuchin",
    "howler monkey", "titi monkey", "Geoffroy's spider monkey", "common squirrel monkey",
    "ring-tailed lemur", "indri", "Asian elephant", "African bush elephant", "red panda",
    "giant panda", "snoek fish", "eel", "silver salmon", "rock beauty fish", "clownfish",
    "sturgeon", "gar fish", "lionfish", "pufferfish", "abacus", "abaya", "academic gown",
    "accordion", "acoustic guitar", "aircraft carrier", "airliner", "airship", "altar", "ambulance",
    "amphibious vehicle", "analog clock", "apiary", "apron", "trash can", "assault rifle",
    "backpack", "bakery", "balance beam", "balloon", "ballpoint pen", "Band-Aid", "banjo",
    "baluster / handrail", "barbell", "barber chair", "barbershop", "barn", "barometer", "barrel",
    "wheelbarrow", "baseball", "basketball", "bassinet", "bassoon", "swimming cap", "bath towel",
    "bathtub", "station wagon", "lighthouse", "beaker", "military hat (bearskin or shako)",
    "beer bottle", "beer glass", "bell tower", "baby bib", "tandem bicycle", "bikini",
    "ring binder", "binoculars", "birdhouse", "boathouse", "bobsleigh", "bolo tie", "poke bonnet",
    "bookcase", "bookstore", "bottle cap", "hunting bow", "bow tie", "brass memorial plaque", "bra",
    "breakwater", "breastplate", "broom", "bucket", "buckle", "bulletproof vest",
    "high-speed train", "butcher shop", "taxicab", "cauldron", "candle", "cannon", "canoe",
    "can opener", "cardigan", "car mirror", "carousel", "tool kit", "cardboard box / carton",
    "car wheel", "automated teller machine", "cassette", "cassette player", "castle", "catamaran",
    "CD player", "cello", "mobile phone", "chain", "chain-link fence", "chain mail", "chainsaw",
    "storage chest", "chiffonier", "bell or wind chime", "china cabinet", "Christmas stocking",
    "church", "movie theater", "cleaver", "cliff dwelling", "cloak", "clogs", "cocktail shaker",
    "coffee mug", "coffeemaker", "spiral or coil", "combination lock", "computer keyboard",
    "candy store", "container ship", "convertible", "corkscrew", "cornet", "cowboy boot",
    "cowboy hat", "cradle", "construction crane", "crash helmet", "crate", "infant bed",
    "Crock Pot", "croquet ball", "crutch", "cuirass", "dam", "desk", "desktop computer",
    "rotary dial telephone", "diaper", "digital clock", "digital watch", "dining table",
    "dishcloth", "dishwasher", "disc brake", "dock", "dog sled", "dome", "doormat", "drilling rig",
    "drum", "drumstick", "dumbbell", "Dutch oven", "electric fan", "electric guitar",
    "electric locomotive", "entertainment center", "envelope", "espresso machine", "face powder",
    "feather boa", "filing cabinet", "fireboat", "fire truck", "fire screen", "flagpole", "flute",
    "folding chair", "football helmet", "forklift", "fountain", "fountain pen", "four-poster bed",
    "freight car", "French horn", "frying pan", "fur coat", "garbage truck",
    "gas mask or respirator", "gas pump", "goblet", "go-kart", "golf ball", "golf cart", "gondola",
    "gong", "gown", "grand piano", "greenhouse", "radiator grille", "grocery store", "guillotine",
    "hair clip", "hair spray", "half-track", "hammer", "hamper", "hair dryer", "hand-held computer",
    "handkerchief", "hard disk drive", "harmonica", "harp", "combine harvester", "hatchet",
    "holster", "home theater", "honeycomb", "hook", "hoop skirt", "gymnastic horizontal bar",
    "horse-drawn vehicle", "hourglass", "iPod", "clothes iron", "carved pumpkin", "jeans", "jeep",
    "T-shirt", "jigsaw puzzle", "rickshaw", "joystick", "kimono", "knee pad", "knot", "lab coat",
    "ladle", "lampshade", "laptop computer", "lawn mower", "lens cap", "letter opener", "library",
    "lifeboat", "lighter", "limousine", "ocean liner", "lipstick", "slip-on shoe", "lotion",
    "music speaker", "loupe magnifying glass", "sawmill", "magnetic compass", "messenger bag",
    "mailbox", "tights", "one-piece bathing suit", "manhole cover", "maraca", "marimba", "mask",
    "matchstick", "maypole", "maze", "measuring cup", "medicine cabinet", "megalith", "microphone",
    "microwave oven", "military uniform", "milk can", "minibus", "miniskirt", "minivan", "missile",
    "mitten", "mixing bowl", "mobile home", "ford model t", "modem", "monastery", "monitor",
    "moped", "mortar and pestle", "graduation cap", "mosque", "mosquito net", "vespa",
    "mountain bike", "tent", "computer mouse", "mousetrap", "moving van", "muzzle", "metal nail",
    "neck brace", "necklace", "baby pacifier", "notebook computer", "obelisk", "oboe", "ocarina",
    "odometer", "oil filter", "pipe organ", "oscilloscope", "overskirt", "bullock cart",
    "oxygen mask", "product packet / packaging", "paddle", "paddle wheel", "padlock", "paintbrush",
    "pajamas", "palace", "pan flute", "paper towel", "parachute", "parallel bars", "park bench",
    "parking meter", "railroad car", "patio", "payphone", "pedestal", "pencil case",
    "pencil sharpener", "perfume", "Petri dish", "photocopier", "plectrum", "Pickelhaube",
    "picket fence", "pickup truck", "pier", "piggy bank", "pill bottle", "pillow", "ping-pong ball",
    "pinwheel", "pirate ship", "drink pitcher", "block plane", "planetarium", "plastic bag",
    "plate rack", "farm plow", "plunger", "Polaroid camera", "pole", "police van", "poncho",
    "pool table", "soda bottle", "plant pot", "potter's wheel", "power drill", "prayer rug",
    "printer", "prison", "missile", "projector", "hockey puck", "punching bag", "purse", "quill",
    "quilt", "race car", "racket", "radiator", "radio", "radio telescope", "rain barrel",
    "recreational vehicle", "fishing casting reel", "reflex camera", "refrigerator",
    "remote control", "restaurant", "revolver", "rifle", "rocking chair", "rotisserie", "eraser",
    "rugby ball", "ruler measuring stick", "sneaker", "safe", "safety pin", "salt shaker", "sandal",
    "sarong", "saxophone", "scabbard", "weighing scale", "school bus", "schooner", "scoreboard",
    "CRT monitor", "screw", "screwdriver", "seat belt", "sewing machine", "shield", "shoe store",
    "shoji screen / room divider", "shopping basket", "shopping cart", "shovel", "shower cap",
    "shower curtain", "ski", "balaclava ski mask", "sleeping bag", "slide rule", "sliding door",
    "slot machine", "snorkel", "snowmobile", "snowplow", "soap dispenser", "soccer ball", "sock",
    "solar thermal collector", "sombrero", "soup bowl", "keyboard space bar", "space heater",
    "space shuttle", "spatula", "motorboat", "spider web", "spindle", "sports car", "spotlight",
    "stage", "steam locomotive", "through arch bridge", "steel drum", "stethoscope", "scarf",
    "stone wall", "stopwatch", "stove", "strainer", "tram", "stretcher", "couch", "stupa",
    "submarine", "suit", "sundial", "sunglasses", "sunglasses", "sunscreen", "suspension bridge",
    "mop", "sweatshirt", "swim trunks / shorts", "swing", "electrical switch", "syringe",
    "table lamp", "tank", "tape player", "teapot", "teddy bear", "television", "tennis ball",
    "thatched roof", "front curtain", "thimble", "threshing machine", "throne", "tile roof",
    "toaster", "tobacco shop", "toilet seat", "torch", "totem pole", "tow truck", "toy store",
    "tractor", "semi-trailer truck", "tray", "trench coat", "tricycle", "trimaran", "tripod",
    "triumphal arch", "trolleybus", "trombone", "hot tub", "turnstile", "typewriter keyboard",
    "umbrella", "unicycle", "upright piano", "vacuum cleaner", "vase", "vaulted or arched ceiling",
    "velvet fabric", "vending machine", "vestment", "viaduct", "violin", "volleyball",
    "waffle iron", "wall clock", "wallet", "wardrobe", "military aircraft", "sink",
    "washing machine", "water bottle", "water jug", "water tower", "whiskey jug", "whistle",
    "hair wig", "window screen", "window shade", "Windsor tie", "wine bottle", "airplane wing",
    "wok", "wooden spoon", "wool", "split-rail fence", "shipwreck", "sailboat", "yurt", "website",
    "comic book", "crossword", "traffic or street sign", "traffic light", "dust jacket", "menu",
    "plate", "guacamole", "consomme", "hot pot", "trifle", "ice cream", "popsicle", "baguette",
    "bagel", "pretzel", "cheeseburger", "hot dog", "mashed potatoes", "cabbage", "broccoli",
    "cauliflower", "zucchini", "spaghetti squash", "acorn squash", "butternut squash", "cucumber",
    "artichoke", "bell pepper", "cardoon", "mushroom", "Granny Smith apple", "strawberry", "orange",
    "lemon", "fig", "pineapple", "banana", "jackfruit", "cherimoya (custard apple)", "pomegranate",
    "hay", "carbonara", "chocolate syrup", "dough", "meatloaf", "pizza", "pot pie", "burrito",
    "red wine", "espresso", "tea cup", "eggnog", "mountain", "bubble", "cliff", "coral reef",
    "geyser", "lakeshore", "promontory", "sandbar", "beach", "valley", "volcano", "baseball player",
    "bridegroom", "scuba diver", "rapeseed", "daisy", "yellow lady's slipper", "corn", "acorn",
    "rose hip", "horse chestnut seed", "coral fungus", "agaric", "gyromitra", "stinkhorn mushroom",
    "earth star fungus", "hen of the woods mushroom", "bolete", "corn cob", "toilet paper",
)
# fmt: on

# Folder names of the datasets -> the names the paper's runs put in prompts (CoOp's dataset scripts).
EUROSAT_CLASS_NAMES = {
    "AnnualCrop": "Annual Crop Land",
    "Forest": "Forest",
    "HerbaceousVegetation": "Herbaceous Vegetation Land",
    "Highway": "Highway or Road",
    "Industrial": "Industrial Buildings",
    "Pasture": "Pasture Land",
    "PermanentCrop": "Permanent Crop Land",
    "Residential": "Residential Buildings",
    "River": "River",
    "SeaLake": "Sea or Lake",
}
# Stanford Cars: the Hub copies (tanganke/stanford_cars, ...) name classes "AM General Hummer SUV 2000", as the
# dataset's devkit does; CoOp's reader (and so the paper's prompts) moves the year first: "2000 AM General Hummer SUV".
YEAR_FIRST = (r"^(.*\S)\s+((?:19|20)\d\d)$", r"\2 \1")
CALTECH101_CLASS_NAMES = {"airplanes": "airplane", "Faces": "face", "Leopards": "leopard", "Motorbikes": "motorbike"}


def _key(name: str) -> str:
    """A spelling-insensitive lookup key: `AnnualCrop`, `annual_crop` and `Annual Crop` all read `annualcrop`."""
    return re.sub(r"[\s_\-]+", "", str(name)).lower()


@dataclass(frozen=True)
class DatasetPreset:
    r"""
    The paper's settings for one of its datasets.

    Args:
        name (`str`): the preset's name (`"eurosat"`, `"imagenet"`, ...).
        templates (`tuple[str, ...]`): prompt templates, each with one `{}`.
        init_alpha (`float`): the `alpha` the cache starts with (and Tip-Adapter-F trains with).
        search_scale (`tuple[float, float]`): `(beta_max, alpha_max)` of the α/β grid.
        init_beta (`float`, *optional*, defaults to `1.0`): the starting `beta`.
        search_step (`tuple[int, int]`, *optional*, defaults to `(200, 20)`): `(n_beta, n_alpha)` of the grid.
        augment_epochs (`int`, *optional*, defaults to `10`): augmented views averaged into each cache key.
        train_epochs (`int`, *optional*, defaults to `20`): Tip-Adapter-F epochs.
        learning_rate (`float`, *optional*, defaults to `1e-3`): Tip-Adapter-F learning rate.
        class_name_map (`Mapping[str, str]`, *optional*): dataset class names -> the names used in prompts, looked up
            ignoring case, spaces, `_` and `-`.
        class_names (`tuple[str, ...]`, *optional*): names by label index, for datasets whose labels follow a fixed
            order (ImageNet's 1000 classes).
        class_name_pattern (`tuple[str, str]`, *optional*): a regular expression and its replacement applied to every
            name not in `class_name_map` (Stanford Cars: the year first, "AM General Hummer SUV 2000" ->
            "2000 AM General Hummer SUV", as CoOp's reader names the classes).
        paper_accuracy (`Mapping[str, float]`, *optional*): the paper's 16-shot ResNet-50 test accuracies (%),
            `zero_shot`, `tip_adapter` and `tip_adapter_f`.

    Example:

    ```python
    >>> from hf_tip.data.templates import get_preset
    >>> preset = get_preset("eurosat")
    >>> preset.templates, preset.search_scale
    (('a centered satellite photo of {}.',), (12.0, 10.0))
    >>> preset.clean_class_names(["AnnualCrop", "SeaLake"])
    ['Annual Crop Land', 'Sea or Lake']
    ```
    """

    name: str
    templates: tuple[str, ...]
    init_alpha: float
    search_scale: tuple[float, float]
    init_beta: float = 1.0
    search_step: tuple[int, int] = (200, 20)
    augment_epochs: int = 10
    train_epochs: int = 20
    learning_rate: float = 1e-3
    class_name_map: Mapping[str, str] = field(default_factory=dict)
    class_names: tuple[str, ...] | None = None
    class_name_pattern: tuple[str, str] | None = None
    paper_accuracy: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "class_name_map", MappingProxyType(dict(self.class_name_map)))
        object.__setattr__(self, "paper_accuracy", MappingProxyType(dict(self.paper_accuracy)))

    def clean_class_names(self, names: Sequence[str]) -> list[str]:
        """The names the paper's prompts use for a dataset's class names (in label order).

        With `class_names` set (ImageNet), `names` must have as many entries and is replaced by them, index by index;
        otherwise each name is renamed through `class_name_map` (spelling-insensitive), else by
        `class_name_pattern`, or kept.
        """
        names = [str(n) for n in names]
        if self.class_names is not None:
            if len(names) != len(self.class_names):
                raise ValueError(
                    f"The `{self.name}` preset names {len(self.class_names)} classes by label index, but the dataset "
                    f"has {len(names)}; pass `--class_names` or drop `--template_set {self.name}`."
                )
            return list(self.class_names)
        lookup = {_key(k): v for k, v in self.class_name_map.items()}
        renamed = [lookup.get(_key(n)) for n in names]
        if self.class_name_pattern is not None:
            pattern, replacement = self.class_name_pattern
            names = [re.sub(pattern, replacement, n) for n in names]
        return [new if new is not None else n for new, n in zip(renamed, names, strict=True)]

    def config_kwargs(self) -> dict:
        """[`TipAdapterConfig`] arguments of this preset: templates, initial alpha/beta, grid and augment epochs."""
        return {
            "templates": list(self.templates),
            "alpha": self.init_alpha,
            "beta": self.init_beta,
            "search_scale": list(self.search_scale),
            "search_step": list(self.search_step),
            "augment_epochs": self.augment_epochs,
        }


def _preset(name, templates, alpha, scale, accuracy, epochs=20, **kwargs) -> DatasetPreset:
    """A preset from one row of the paper's table."""
    return DatasetPreset(
        name=name,
        templates=tuple(templates),
        init_alpha=alpha,
        search_scale=scale,
        train_epochs=epochs,
        paper_accuracy=dict(zip(("zero_shot", "tip_adapter", "tip_adapter_f"), accuracy, strict=True)),
        **kwargs,
    )


PRESETS: Mapping[str, DatasetPreset] = MappingProxyType(
    {
        preset.name: preset
        for preset in (
            _preset(
                "imagenet",
                IMAGENET_TEMPLATES,
                1.17,
                (7.0, 3.0),
                (60.32, 62.01, 65.51),
                class_names=IMAGENET_CLASSNAMES,
            ),
            _preset(
                "caltech101",
                ["a photo of a {}."],
                3.0,
                (12.0, 5.0),
                (85.92, 90.18, 92.86),
                class_name_map=CALTECH101_CLASS_NAMES,
            ),
            _preset("oxford_pets", ["a photo of a {}, a type of pet."], 1.17, (7.0, 3.0), (85.83, 88.14, 89.70)),
            _preset(
                "stanford_cars",
                ["a photo of a {}."],
                3.0,
                (20.0, 10.0),
                (55.74, 66.77, 75.74),
                class_name_pattern=YEAR_FIRST,
            ),
            _preset(
                "oxford_flowers", ["a photo of a {}, a type of flower."], 10.0, (50.0, 50.0), (66.02, 89.89, 94.80)
            ),
            _preset("food101", ["a photo of {}, a type of food."], 1.17, (10.0, 10.0), (77.32, 77.83, 79.43)),
            _preset(
                "fgvc_aircraft", ["a photo of a {}, a type of aircraft."], 5.0, (30.0, 30.0), (17.10, 29.76, 35.55)
            ),
            _preset("sun397", ["a photo of a {}."], 1.17, (12.0, 10.0), (58.52, 66.85, 71.47)),
            _preset("dtd", ["{} texture."], 2.0, (13.0, 13.0), (42.20, 60.93, 66.55)),
            _preset(
                "eurosat",
                ["a centered satellite photo of {}."],
                2.0,
                (12.0, 10.0),
                (37.52, 70.54, 84.54),
                epochs=100,
                class_name_map=EUROSAT_CLASS_NAMES,
            ),
            _preset("ucf101", ["a photo of a person doing {}."], 3.0, (7.0, 3.0), (61.35, 70.58, 78.03)),
        )
    }
)

ALIASES = {
    "pets": "oxford_pets",
    "cars": "stanford_cars",
    "flowers": "oxford_flowers",
    "flowers102": "oxford_flowers",
    "oxford_flowers102": "oxford_flowers",
    "fgvc": "fgvc_aircraft",
    "aircraft": "fgvc_aircraft",
    "imagenet1k": "imagenet",
    "imagenet_1k": "imagenet",
    "caltech": "caltech101",
    "ucf": "ucf101",
    "sun": "sun397",
    "food": "food101",
}


def get_preset(name: str) -> DatasetPreset:
    """The paper's preset named `name` (case-insensitive, `-` reads as `_`, a few aliases such as `pets`)."""
    key = str(name).strip().lower().replace("-", "_")
    key = ALIASES.get(key, key)
    if key not in PRESETS:
        raise ValueError(f"Unknown template set {name!r}; choose one of {sorted(PRESETS)}.")
    return PRESETS[key]


def resolve_templates(templates: Sequence[str] | None = None, template_set: str | None = None) -> list[str]:
    """The prompt templates to use: `templates` when given, else the preset's, else `DEFAULT_TEMPLATES`."""
    if templates:
        return [str(t) for t in templates]
    if template_set is not None:
        return list(get_preset(template_set).templates)
    return list(DEFAULT_TEMPLATES)


def unique_class_names(names: Sequence[str]) -> list[str]:
    """Labels safe for `id2label` (which must be unique): a repeated name gets its label index appended, e.g.
    ImageNet's second `missile` becomes `missile (744)`. Names that are already unique are returned unchanged."""
    seen: dict[str, int] = {}
    for name in names:
        seen[name] = seen.get(name, 0) + 1
    first: set[str] = set()
    out = []
    for index, name in enumerate(names):
        if seen[name] > 1 and name in first:
            out.append(f"{name} ({index})")
        else:
            first.add(name)
            out.append(name)
    return out


__all__ = [
    "DEFAULT_TEMPLATES",
    "IMAGENET_CLASSNAMES",
    "IMAGENET_TEMPLATES",
    "PRESETS",
    "DatasetPreset",
    "get_preset",
    "resolve_templates",
    "unique_class_names",
]
