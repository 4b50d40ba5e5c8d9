"""Closed value lists of the synthetic world (fictional places and companies, so no model
could know them from elsewhere)."""

FIRST_NAMES = """Abel Ada Adele Adrian Agata Agnes Aida Alan Alba Albin Aldo Alec Alena Alfie Alina Alma Alois Alvar
Amara Amos Anders Anik Anja Ansel Anselm Anton Aria Arlo Arne Arvid Asha Astrid Aurel Aurora Axel
Basil Beatrix Bela Benedikt Benita Benno Berit Bettina Bianca Birgit Bjorn Blaise Bodil Boris Bram
Bruno Caius Cala Camila Carla Carmen Casimir Caspar Cato Cecily Celia Cesar Chiara Cillian Clara
Clemens Colm Cora Corin Cyrus Dagmar Dagny Dalia Damian Daria Dario Dasha Delia Dmitri Dora Dorian
Ebba Edda Edith Edwin Effie Egon Eilif Elena Elias Elin Elio Eliza Elke Ellis Elsa Elvira Emeric
Emil Emma Emre Enid Enzo Erik Ernst Esme Estelle Eva Evander Ezra Fabian Faye Felix Fenna Filip
Fiona Flora Freya Frida Fritz Gabor Gael Gemma Gideon Gina Gisela Goran Greer Greta Gustav Hakon
Halina Hana Hanne Harald Hedda Heidi Helga Henrik Hester Hilde Hiro Hollis Hugo Ida Idris Igor
Ilario Ilona Ilse Imre Ines Inga Ingrid Irene Iris Isak Isolde Ivan Ivo Jakob Jana Janek Jasper Joel
Jonas Jorun Josef Julia Juno Jurgen Kai Kamil Karin Kasper Katja Kelda Kian Kira Klara Knut Lajos
Lara Lars Lavinia Leda Leif Lena Leona Leopold Liam Liese Linnea Lino Livia Lorenz Lotte Luca Lucia
Ludo Magnus Malin Mara Marek Marta Matteo Mattias Maya Mika Milo Minna Mira Moritz Nadia Nanna Nell
Nestor Nico Nils Nina Noor Nora Nuno Odin Olga Omar Oskar Ottilie Otto Paloma Paula Pavel Petra Pia
Piet Pilar Priya Quentin Quin Rafa Rasmus Ravi Reza Rhea Rikard Rina Ronja Rosa Rune Ruth Sabine
Saga Sami Sanna Sara Selma Serafina Silas Simon Sofia Soren Stella Sven Tamsin Tara Teo Tessa
Thaddeus Thea Tilde Tobias Tomas Tove Ulla Ulrik Uma Ursula Valter Vanja Vera Viggo Viktor Vilma
Wanda Wendel Wilma Xenia Yannick Yara Yusuf Zara Zelda Zeno Zofia Zora""".split()
LAST_NAMES = """Abbot Ackland Addington Ainsley Alder Allard Ambrose Anstey Appleby Arden Arkwright Ashby Ashworth
Atwood Audley Bagley Bainbridge Balfour Bancroft Banning Bardsley Barlow Barton Beaumont Beckett
Bellamy Benning Beresford Bexley Birch Blackwood Blakely Blythe Bolton Bramley Brandt Brennan
Brewster Brigham Brockway Burnell Calder Caldwell Camber Carlyle Carver Causey Cavell Chalmers
Chandler Chester Cheswick Clifton Colby Conway Corbin Cotton Crane Cromwell Dacre Dallow Dalton
Danvers Darby Davenport Dawlish Denholm Dewhurst Dormer Drake Draycott Dunmore Eastman Easton
Eccleston Eldridge Elkins Ellery Elsworth Emsley Everard Fairfax Fairweather Falkner Farrow
Faversham Fenton Fenwick Finch Fletcher Forrester Foxley Frobisher Gable Garland Gaskell Gilmore
Glanville Goddard Gorham Granger Greenhalgh Gresham Gunning Hadley Hale Halloway Hammond Hargreave
Harlow Hartley Hawley Haywood Hendry Hollingsworth Holloway Horton Howell Huxley Ingleby Inglis
Ingram Irving Jarrow Jennings Jessop Keller Kemble Kendal Kersey Kettering Kilbride Kingsley Kirby
Knowles Lacey Lambert Langley Lansbury Larkin Lathom Leland Lindley Linwood Lockhart Lockwood
Lowther Ludlow Mablethorpe Maddox Malvern Manning Marchbank Marlow Marsden Maxwell Medway Melling
Mercer Merrick Milner Moberly Montague Morland Mortimer Mowbray Nettleton Neville Newell Nolan
Norcross Northam Norwood Oakley Oldham Ormsby Orton Osgood Otterburn Padley Paget Palmer Parrish
Pelham Pember Pendleton Penrose Percival Pickering Pimlott Plumley Poole Prescott Quarles Quayle
Quincey Radcliffe Radley Rainsford Ramsay Ransome Rathbone Redfern Renshaw Ridley Rigby Rockwell
Rowan Rowland Royston Rushton Sackville Sallow Sandford Saxby Scarsdale Sedgwick Selwyn Sexton
Shelby Sherwood Shipley Skelton Somerset Stanton Stirling Stockton Strickland Sutton Talbot Tatum
Tennant Thackeray Thistlewood Thorne Thornton Tilbury Tolland Tollemache Townsend Tremaine Trevelyan
Tunstall Turnbull Underwood Upton Vance Varley Vickers Wadley Wainwright Wakefield Walcott Waller
Warrick Webley Wendell Westbrook Wetherby Whitby Whitlock Whitmore Wilder Winslow Woodley Wragby
Yardley Yates Yelland Yeoman Zeller""".split()
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
