"""`enc-presets`: the published weights enc_tf can start from, and fetching them ahead of use.

  list [--kind backbone|model]   the presets: name, backbone, dataset, classes, published
                                 mIoU, parameters, and the publisher's file
  fetch NAME|URL ...             download, verify and (models) convert into the cache;
                                 prints each local path

Files go to $ENC_TF_HOME (default ~/.cache/enc_tf); ENC_TF_OFFLINE=1 uses only the cache;
ENC_TF_MIRROR=http://host:port fetches from a mirror with the publishers' paths.
"""

from enc_tf.console import DownloadProgress, command_parser, run_cli
from enc_tf.presets.registry import BACKBONE, KINDS, find, list_presets, table
from enc_tf.presets.resolve import backbone_weights_path, model_path


def _list(args):
    chosen = {p.name: p for p in list_presets(args.kind)}
    print(table(chosen))
    aliases = [f"{a} -> {p.name}" for p in chosen.values() for a in p.aliases]
    if aliases:
        print("\naliases: " + "; ".join(aliases))


def _fetch(args):
    for spec in args.names:
        preset = find(spec)
        if preset is not None and preset.kind == BACKBONE:
            path = backbone_weights_path(spec, preset.backbone, DownloadProgress())
        else:
            path = model_path(spec, DownloadProgress())
        print(f"{spec}: {path}")


def make_parser():
    parser = command_parser("enc-presets", __doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="print the table of presets")
    listing.add_argument("--kind", choices=KINDS, help="only backbones or only trained models")
    fetching = sub.add_parser("fetch", help="download (and convert) presets or URLs now")
    fetching.add_argument("names", nargs="+", help="preset names or http(s) URLs")
    return parser


def run(args):
    {"list": _list, "fetch": _fetch}[args.command](args)


def main(argv=None):
    return run_cli(make_parser(), run, argv)
