"""Closed value lists of the synthetic world (fictional places and companies, so no model
could know them from elsewhere)."""

FIRST_NAMES = """Ada Alba Aldo Alma Anik Arlo Asha Aurel Bela Bram Cala Cato Cora Dario Delia Edda Elio
Emre Enzo Esme Ezra Fenna Fiona Gael Gina Greta Hana Hugo Ida Ilse Ines Ivo Jana Joel Juno Kai Kira
Lara Leif Lena Lino Luca Mara Milo Mira Nadia Nico Nils Nora Odin Olga Omar Pia Quin Rafa Rhea Rosa
Sami Selma Tara Teo Uma Vera Yara Zeno""".split()
LAST_NAMES = """Abbot Alder Ashby Barlow Bexley Brandt Calder Carver Dalton Drake Eastman Ellery Farrow
Fenwick Garland Gresham Hadley Harlow Ingram Irving Jessop Keller Kendal Lacey Larkin Marlow Mercer
Nolan Norwood Oakley Orton Pember Prescott Quayle Radley Rowan Sallow Sexton Thorne Tolland Upton
Vance Varley Waller Whitlock Yardley Yelland Zeller""".split()
CITIES = """Varnholt Elmsport Quillmere Dunmarch Saltreach Brisa Korvath Lunhaven Marrowby Ostfell
Pellucid Ravensk Sorrento Tamberlin Ulvik Vessaly Wintermoor Yarrowgate Zelenka Ambergate Caskadel
Dravos Fennick Glimmerdale Harthollow""".split()
UNIVERSITIES = ["Halden University", "Corvid Institute", "Marisol College", "Brightwater University",
                "Eskerton Polytechnic", "Vale Academy", "Northcliff University", "Ironwood College",
                "Saint Orla University", "Tessaly Institute", "Greyhaven University", "Lumen Academy",
                "Oakhurst College", "Pinecrest University", "Redmere Institute", "Silverton University",
                "Thornbury College", "Umber Polytechnic", "Westmarch University", "Zephyr Institute"]
FIELDS = ["astronomy", "botany", "chemistry", "geology", "linguistics", "mathematics", "medicine",
          "architecture", "economics", "philosophy", "robotics", "oceanography", "music theory",
          "zoology", "cartography", "ceramics", "genetics", "meteorology", "history", "law"]
EMPLOYERS = ["Nordlight Systems", "Copperleaf Labs", "Bluefin Foods", "Halcyon Motors", "Quartzline",
             "Granite Bank", "Aurora Press", "Kestrel Air", "Mosswood Pharma", "Pebble Robotics",
             "Solace Health", "Tidewater Shipping", "Umbra Games", "Verdant Energy", "Willow Textiles",
             "Yonder Telecom", "Zinnia Studios", "Foxglove Media", "Ember Mining", "Larch Software"]
COUNTING_WORDS = sorted({w.lower() for w in CITIES} | {w.lower() for w in " ".join(FIELDS).split()}
                        | {"strawberry", "banana", "mississippi", "bookkeeper", "committee", "balloon",
                           "parallel", "occurrence", "successful", "address", "raccoon", "letter"})
