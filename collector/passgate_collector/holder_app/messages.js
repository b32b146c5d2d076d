// Made by tools/i18n_catalogs.py from holder_app/locale/*/LC_MESSAGES/passgate_holder.po
// and firmware/passgate/data/purposes.toml: do not edit; edit those and run the tool.
export default {
 "messages": {
  "ru": {
   "Add the pass": "Добавить пропуск",
   "Add your pass": "Добавьте пропуск",
   "Close": "Закрыть",
   "Create my key": "Создать ключ",
   "Open the link you were sent, or paste the pass text (PG1:…) here:": "Откройте присланную ссылку или вставьте сюда текст пропуска (PG1:…):",
   "Pass added.": "Пропуск добавлен.",
   "Purpose": "Цель",
   "Purpose {code}": "Цель {code}",
   "Remove this pass": "Удалить пропуск",
   "Show my pass": "Показать пропуск",
   "Show this code to the issuer, or send them the text below it.": "Покажите этот код тому, кто выдаёт пропуск, или отправьте ему текст под кодом.",
   "The key stays in this browser and cannot be copied out of it. If you clear the browser's data, you will need a new pass.": "Ключ хранится в этом браузере, скопировать его нельзя. Если очистить данные браузера, понадобится новый пропуск.",
   "The live code could not be made. Reload the page and try again.": "Не удалось создать живой код. Перезагрузите страницу и попробуйте снова.",
   "This browser cannot keep a key safely (it lacks WebCrypto or IndexedDB, or the page is not on https). Open the app in an up-to-date browser over https.": "Этот браузер не может надёжно хранить ключ (нет WebCrypto или IndexedDB, или страница открыта не по https). Откройте приложение в современном браузере по https.",
   "This browser could not make a key. Use an up-to-date browser.": "Браузер не смог создать ключ. Используйте современный браузер.",
   "This is not a passgate pass. Check that the whole text was copied.": "Это не пропуск passgate. Проверьте, что текст скопирован полностью.",
   "This pass is not bound to a phone: show it as it is, it does not need this app.": "Этот пропуск не привязан к телефону: показывайте его как есть, это приложение для него не нужно.",
   "This pass was issued for another phone's key. Ask the issuer for a pass for this phone's key.": "Этот пропуск выдан для ключа другого телефона. Попросите выдать пропуск для ключа этого телефона.",
   "This phone's key": "Ключ этого телефона",
   "Turn the screen brightness up and hold the phone still in front of the camera.": "Увеличьте яркость экрана и держите телефон неподвижно перед камерой.",
   "Until": "До",
   "Valid": "Действует",
   "Your pass": "Ваш пропуск",
   "Your pass will work only with this phone. First the phone makes its own key; it never leaves this phone.": "Пропуск будет работать только с этим телефоном. Сначала телефон создаёт свой ключ; ключ никогда не покидает телефон.",
   "Zones": "Зоны",
   "expired": "срок истёк",
   "for {span} more": "ещё {span}",
   "not yet: from {date}": "пока нет: с {date}",
   "passgate pass": "Пропуск passgate",
   "{n} day": [
    "{n} день",
    "{n} дня",
    "{n} дней"
   ],
   "{n} hour": [
    "{n} час",
    "{n} часа",
    "{n} часов"
   ],
   "{n} minute": [
    "{n} минуту",
    "{n} минуты",
    "{n} минут"
   ],
   "{n} second": [
    "{n} секунду",
    "{n} секунды",
    "{n} секунд"
   ]
  },
  "tt": {
   "Add the pass": "Пропускны өстәргә",
   "Add your pass": "Пропускыгызны өстәгез",
   "Close": "Ябарга",
   "Create my key": "Ачкыч ясарга",
   "Open the link you were sent, or paste the pass text (PG1:…) here:": "Сезгә җибәрелгән сылтаманы ачыгыз яки пропуск текстын (PG1:…) монда куегыз:",
   "Pass added.": "Пропуск өстәлде.",
   "Purpose": "Максат",
   "Purpose {code}": "Максат {code}",
   "Remove this pass": "Пропускны бетерергә",
   "Show my pass": "Пропускны күрсәтергә",
   "Show this code to the issuer, or send them the text below it.": "Бу кодны пропуск бирүчегә күрсәтегез яки аның астындагы текстны җибәрегез.",
   "The key stays in this browser and cannot be copied out of it. If you clear the browser's data, you will need a new pass.": "Ачкыч бу браузерда саклана, аны күчереп алып булмый. Браузер мәгълүматларын чистартсагыз, яңа пропуск кирәк булачак.",
   "The live code could not be made. Reload the page and try again.": "Тере кодны ясап булмады. Битне яңадан йөкләгез һәм тагын бер тапкыр карагыз.",
   "This browser cannot keep a key safely (it lacks WebCrypto or IndexedDB, or the page is not on https). Open the app in an up-to-date browser over https.": "Бу браузер ачкычны ышанычлы саклый алмый (WebCrypto яки IndexedDB юк, яки бит https аша ачылмаган). Кушымтаны заманча браузерда https аша ачыгыз.",
   "This browser could not make a key. Use an up-to-date browser.": "Браузер ачкыч ясый алмады. Заманча браузер кулланыгыз.",
   "This is not a passgate pass. Check that the whole text was copied.": "Бу passgate пропускы түгел. Текст тулысынча күчерелгәнме, тикшерегез.",
   "This pass is not bound to a phone: show it as it is, it does not need this app.": "Бу пропуск телефонга бәйләнмәгән: аны шул килеш күрсәтегез, аңа бу кушымта кирәкми.",
   "This pass was issued for another phone's key. Ask the issuer for a pass for this phone's key.": "Бу пропуск башка телефон ачкычы өчен бирелгән. Бу телефон ачкычы өчен пропуск сорагыз.",
   "This phone's key": "Бу телефонның ачкычы",
   "Turn the screen brightness up and hold the phone still in front of the camera.": "Экран яктылыгын арттырыгыз һәм телефонны камера каршында селкетмичә тотыгыз.",
   "Until": "Бетү вакыты",
   "Valid": "Гамәлдә",
   "Your pass": "Сезнең пропуск",
   "Your pass will work only with this phone. First the phone makes its own key; it never leaves this phone.": "Пропуск бары тик бу телефон белән генә эшләячәк. Башта телефон үз ачкычын ясый; ачкыч беркайчан да телефоннан чыкмый.",
   "Zones": "Зоналар",
   "expired": "вакыты чыккан",
   "for {span} more": "тагын {span}",
   "not yet: from {date}": "әлегә гамәлдә түгел: {date} башлап",
   "passgate pass": "passgate пропускы",
   "{n} day": [
    "{n} көн"
   ],
   "{n} hour": [
    "{n} сәгать"
   ],
   "{n} minute": [
    "{n} минут"
   ],
   "{n} second": [
    "{n} секунд"
   ]
  }
 },
 "purposes": {
  "1": {
   "en": "Work",
   "ru": "Работа",
   "tt": "Эш"
  },
  "2": {
   "en": "Shopping",
   "ru": "Магазин",
   "tt": "Кибет"
  },
  "3": {
   "en": "Dog walk",
   "ru": "Выгул собаки",
   "tt": "Эт йөртү"
  },
  "4": {
   "en": "Trash",
   "ru": "Мусор",
   "tt": "Чүп-чар"
  },
  "5": {
   "en": "Doctor",
   "ru": "Врач",
   "tt": "Табиб"
  },
  "10": {
   "en": "Court",
   "ru": "Суд",
   "tt": "Суд"
  },
  "11": {
   "en": "School run",
   "ru": "Дети в школу",
   "tt": "Мәктәп"
  },
  "12": {
   "en": "Medical/vet",
   "ru": "Врач/ветеринар",
   "tt": "Табиб/ветеринар"
  },
  "13": {
   "en": "Funeral",
   "ru": "Похороны",
   "tt": "Җеназа"
  },
  "14": {
   "en": "Passport office",
   "ru": "Паспортный стол",
   "tt": "Паспорт өстәле"
  },
  "15": {
   "en": "Countryside",
   "ru": "Дача/за город",
   "tt": "Авылга/дачага"
  },
  "16": {
   "en": "Bank/post",
   "ru": "Банк/почта",
   "tt": "Банк/почта"
  },
  "17": {
   "en": "Delivery",
   "ru": "Доставка",
   "tt": "Китереп бирү"
  },
  "18": {
   "en": "Moving house",
   "ru": "Переезд",
   "tt": "Күчеп китү"
  }
 }
};
