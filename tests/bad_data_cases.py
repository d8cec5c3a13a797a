"""Bad input for the data phases, as data: what to write into the project, which params.yaml values to change, which
step must fail, and a fragment its error message must contain. tests/test_bad_data.py runs every case.

A case is a dict:
  id        a short name
  files     {path in the project: text or bytes}   files to write before the run (optional)
  sqlite    {path: {table: CSV text}}              real SQLite files to build (optional)
  params    {"section.key": value}                  params.yaml values to change
  steps     ["ingest", ...]                          the steps to run with `mlops-nb step`, in order; the last one must fail
  message   text the failing step's error must contain
"""

# A small valid table (the columns of the bundled penguins data, whose target `species` the project predicts).
HEADER = "species,island,bill_length_mm,body_mass_g,sex\n"
ROWS = "".join(f"{s},{i},{40 + k % 9}.5,{3500 + 50 * k},{'male' if k % 2 else 'female'}\n"
               for k, (s, i) in enumerate([("Adelie", "Dream"), ("Gentoo", "Biscoe"), ("Chinstrap", "Dream")] * 10))

DATA_CASES = [
    {"id": "missing_file", "params": {"ingest.source": "data/user/nope.csv"}, "steps": ["ingest"],
     "message": "ingest.source: file data/user/nope.csv not found"},
    {"id": "empty_file", "files": {"data/user/empty.csv": ""}, "params": {"ingest.source": "data/user/empty.csv"},
     "steps": ["ingest"], "message": "data/user/empty.csv is empty (0 bytes)"},
    {"id": "header_only", "files": {"data/user/header.csv": HEADER}, "params": {"ingest.source": "data/user/header.csv"},
     "steps": ["ingest"], "message": "holds only a header"},
    {"id": "unparsable_csv", "files": {"data/user/ragged.csv": HEADER + ROWS[:200] + "Adelie,Dream,1,2,3,4,5,6\n" + ROWS[200:]},
     "params": {"ingest.source": "data/user/ragged.csv"}, "steps": ["ingest"], "message": "could not parse data/user/ragged.csv as CSV"},
    {"id": "not_text", "files": {"data/user/binary.csv": b"species,x\n\xff\xfe,1\n"},
     "params": {"ingest.source": "data/user/binary.csv"}, "steps": ["ingest"], "message": "is not text in the encoding 'utf-8'"},
    {"id": "target_not_found", "params": {"project.target": "specis"}, "steps": ["ingest"],
     "message": "column 'specis' is not in the data; did you mean 'species'?"},
    {"id": "target_single_value", "files": {"data/user/one_class.csv": HEADER + "".join("Adelie," + r.split(",", 1)[1] for r in ROWS.splitlines(True))},
     "params": {"ingest.source": "data/user/one_class.csv"}, "steps": ["ingest"], "message": "column 'species' holds a single value ('Adelie'"},
    {"id": "target_all_missing", "files": {"data/user/no_target.csv": HEADER + "".join("NA," + r.split(",", 1)[1] for r in ROWS.splitlines(True))},
     "params": {"ingest.source": "data/user/no_target.csv"}, "steps": ["ingest"], "message": "column 'species' is entirely missing"},
    {"id": "names_collide", "files": {"data/user/collide.csv": HEADER.replace("body_mass_g", " island ") + ROWS},
     "params": {"ingest.source": "data/user/collide.csv"}, "steps": ["ingest"], "message": "column names collide after cleaning"},
    {"id": "no_usable_feature",
     "files": {"data/user/no_feature.csv": "species,row_id,constant,empty\n" + "".join(f"{s},{k},1,\n" for k, s in enumerate(["Adelie", "Gentoo", "Chinstrap"] * 20))},
     "params": {"ingest.source": "data/user/no_feature.csv"}, "steps": ["ingest", "validate"], "message": "usable features: measured 0, limit 1"},
    {"id": "sql_query_fails", "sqlite": {"data/user/shop.db": {"penguins": HEADER + ROWS}},
     "params": {"ingest.source": "sqlite:///data/user/shop.db", "ingest.query": "SELECT * FROM pinguins"}, "steps": ["ingest"],
     "message": "ingest.query: the query failed against sqlite:///data/user/shop.db: OperationalError: no such table: pinguins"},
]
