"""The peer the benchmark compares against: a minimal ``kserve.Model`` doing exactly what KServe's xgbserver does
(``DMatrix`` + ``booster.predict``, ``nthread=1``) on the preprocessed FP32 matrix, served by kserve.ModelServer.

    python bench/xgbpeer.py --model_name NAME --model_file estimator.ubj [KServe's flags]
"""

import argparse

import kserve
import xgboost as xgb
from kserve import model_server
from kserve.utils.utils import get_predict_input, get_predict_response


class XGBoostPeer(kserve.Model):
    def __init__(self, name: str, model_file: str, nthread: int = 1):
        super().__init__(name)
        self.model_file, self.nthread, self._booster = model_file, nthread, None
        self.ready = False

    def load(self) -> bool:
        self._booster = xgb.Booster(params={"nthread": self.nthread}, model_file=self.model_file)
        self.ready = True
        return self.ready

    def predict(self, payload, headers=None, response_headers=None):
        instances = get_predict_input(payload)
        result = self._booster.predict(xgb.DMatrix(instances, nthread=self.nthread))
        return get_predict_response(payload, result, self.name)


def main() -> None:
    parser = argparse.ArgumentParser(parents=[model_server.parser])
    parser.add_argument("--model_file", required=True)
    args, _ = parser.parse_known_args()
    model = XGBoostPeer(args.model_name, args.model_file)
    model.load()
    kserve.ModelServer(http_port=args.http_port, grpc_port=args.grpc_port).start([model])


if __name__ == "__main__":
    main()
