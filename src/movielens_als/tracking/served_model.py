"""The code MLflow runs to build a logged model (a "model from code": nothing is unpickled).

A copy of this file is saved with every model ``tracking.pyfunc`` logs; it only names the
wrapper of the installed package, so a loaded model runs the installed ``movielens_als``.
"""

from mlflow.models import set_model

from movielens_als.tracking.pyfunc import RecommenderModel

set_model(RecommenderModel())
