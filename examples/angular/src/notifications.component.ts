import { Component, OnDestroy, OnInit, inject } from "@angular/core";
import { AsyncPipe, JsonPipe } from "@angular/common";
import { Observable, map, scan } from "rxjs";
import type { Message } from "@turnstile-push/client";
import { TurnstileService } from "./turnstile.service";

/** Shows the connection state and the last messages of one channel. */
@Component({
  selector: "app-notifications",
  standalone: true,
  imports: [AsyncPipe, JsonPipe],
  template: `
    <p>Push: {{ status$ | async }}</p>
    <ul>
      @for (m of news$ | async; track m.offset) {
        <li>#{{ m.offset }} {{ m.data | json }}</li>
      }
    </ul>
  `,
})
export class NotificationsComponent implements OnInit, OnDestroy {
  private readonly push = inject(TurnstileService);

  readonly status$: Observable<string> = this.push.state$.pipe(
    map((s) => (s.state === "disconnected" ? `disconnected (${s.reason}${s.code ? " " + s.code : ""})` : s.state)),
  );
  readonly news$: Observable<Message[]> = this.push.channel("news").pipe(
    scan((last: Message[], m: Message) => [m, ...last].slice(0, 20), []),
  );

  ngOnInit(): void {
    this.push.connect();
  }

  ngOnDestroy(): void {
    this.push.disconnect();
  }
}
