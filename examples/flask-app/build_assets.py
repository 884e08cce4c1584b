"""The build: copies assets/* to static/dist/<name>.<hash>.<ext> and writes static/dist/manifest.json."""
import hashlib
import json
import os
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, 'assets')
OUT = os.path.join(HERE, 'static', 'dist')

os.makedirs(OUT, exist_ok=True)
manifest = {}
for name in sorted(os.listdir(SRC)):
    with open(os.path.join(SRC, name), 'rb') as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    stem, ext = os.path.splitext(name)
    hashed = f'{stem}.{digest}{ext}'
    shutil.copyfile(os.path.join(SRC, name), os.path.join(OUT, hashed))
    manifest[name] = hashed
with open(os.path.join(OUT, 'manifest.json'), 'w', encoding='utf-8') as f:
    json.dump(manifest, f, indent=1)
print(f'{len(manifest)} assets written to {OUT}')
