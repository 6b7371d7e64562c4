"""`kameng churn evaluate` and `kameng recommend evaluate`: the predictive models checked
offline on an interaction or purchase log (issues 11 and 12). Mounted by service/cli.py."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def _fail(message: str) -> typer.Exit:
    typer.secho(message, err=True, fg=typer.colors.RED)
    return typer.Exit(code=2)


churn_cli = typer.Typer(no_args_is_help=True, help="Churn risk: the repeat-buying model (lifecycle).")


@churn_cli.command("evaluate")
def churn_evaluate(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="The purchase log.")],
    calibration_end: Annotated[str, typer.Option(help="Last day (YYYY-MM-DD) of the calibration period.")],
    holdout_end: Annotated[str, typer.Option(help="Last day (YYYY-MM-DD) of the holdout period.")],
    fmt: Annotated[str, typer.Option("--format", help="cdnow (the CDNOW master log) or csv (user,time,amount).")] = "csv",
    period: Annotated[str, typer.Option(help="One purchase per buyer and week (default) or day.")] = "week",
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line of the figures.")] = False,
) -> None:
    """Fit BG/NBD on the calibration period; print forecast and actual repeat purchases in the
    holdout, and the AUC of ranking buyers by the model against ranking by recency alone."""
    import json
    from datetime import date

    from resolvers.lifecycle.evaluation import PERIODS, evaluate
    from service.churn_evaluate import read

    if period not in PERIODS:
        raise _fail(f"--period {period!r}: week or day")
    try:
        start, end = date.fromisoformat(calibration_end), date.fromisoformat(holdout_end)
        result = evaluate(read(file, fmt), start, end, period=period)
    except (OSError, ValueError) as exc:
        raise _fail(f"churn evaluate: {exc}") from None
    p = result.params
    typer.echo(f"buyers in calibration: {result.buyers}")
    typer.echo(f"BG/NBD: r={p.r:.4f} alpha={p.alpha:.4f} a={p.a:.4f} b={p.b:.4f} (weeks)")
    error = (result.holdout_forecast - result.holdout_actual) / result.holdout_actual if result.holdout_actual else 0.0
    typer.echo(f"holdout repeat purchases: forecast {result.holdout_forecast:.1f}, actual {result.holdout_actual} "
               f"({error:+.1%})")
    typer.echo(f"AUC (buys again in the holdout): model {result.auc:.4f}, P(buy) {result.auc_p_buy:.4f}, "
               f"recency alone {result.auc_recency:.4f}")
    if as_json:
        typer.echo(json.dumps(result.as_json()))


recommend_cli = typer.Typer(no_args_is_help=True, help="Recommendations: offline evaluation and training.")


@recommend_cli.command("evaluate")
def recommend_evaluate(
    file: Annotated[Path, typer.Argument(help="CSV interaction log with a header row.")],
    user_col: Annotated[str, typer.Option(help="Column of the user.")],
    item_col: Annotated[str, typer.Option(help="Column of the item.")],
    time_col: Annotated[str, typer.Option(help="Column of the time (number or ISO 8601).")],
    k: Annotated[int, typer.Option(min=1, help="Cut-off of HR@K and NDCG@K.")] = 10,
    max_items: Annotated[int, typer.Option(min=1, help="Items the model keeps (most interacted).")] = 4000,
    json_output: Annotated[bool, typer.Option("--json", help="End with one JSON line of the figures.")] = False,
) -> None:
    """Train the production model on a log, leave-last-out by time, and compare it with
    popularity: HR@K and NDCG@K over a full ranking of each user's unseen items."""
    import orjson

    from resolvers.discovery import model

    try:
        log = model.read_csv(str(file), user_col, item_col, time_col)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise _fail(f"recommend evaluate: {exc}") from None
    result = model.evaluate(log, k=k, max_items=max_items)
    typer.echo(f"log            {result.interactions} interactions, {result.users} users, {result.items} items")
    typer.echo(f"model (EASE)   HR@{k} {result.model_hr:.4f}  NDCG@{k} {result.model_ndcg:.4f}  "
               f"(lambda {result.lam:.1f}, half-life {result.half_life_events:g} interactions)")
    typer.echo(f"popularity     HR@{k} {result.popularity_hr:.4f}  NDCG@{k} {result.popularity_ndcg:.4f}")
    ratio = result.model_hr / result.popularity_hr if result.popularity_hr else float("inf")
    typer.echo(f"ratio          {ratio:.2f}x popularity HR@{k}; trained in {result.train_seconds:.2f} s")
    if json_output:
        typer.echo(orjson.dumps(result.as_json()).decode())
